//! `kiln tokenizer train | import-gguf | encode | decode`.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use clap::Subcommand;
use kiln_corpus::shard::{self, AtomicFile};
use kiln_corpus::Manifest;
use kiln_tokenizer::layout::import_gguf;
use kiln_tokenizer::train::{train_bpe, TrainOptions};
use kiln_tokenizer::Tokenizer;

/// `kiln tokenizer ...`
#[derive(Debug, Subcommand)]
pub enum TokenizerCommand {
    /// Train a byte-level BPE tokenizer with DeepSeek-Coder's pre-tokenizer and role tokens on a
    /// corpus built by `kiln corpus build`; writes tokenizer.json and tokenizer_config.json.
    Train {
        /// Corpus directory (manifest.json + Parquet shards).
        #[arg(long)]
        corpus: PathBuf,
        /// BPE ids (256 byte symbols + merges); the 9 role tokens come on top (paper: 32000).
        #[arg(long, default_value_t = 32_000)]
        vocab_size: usize,
        /// Minimum pair count for a merge.
        #[arg(long, default_value_t = 2)]
        min_frequency: u64,
        /// Output tokenizer.json (tokenizer_config.json is written beside it).
        #[arg(long)]
        out: PathBuf,
    },
    /// Rebuild tokenizer.json (+ tokenizer_config.json beside it) from a GGUF vocabulary
    /// (`tokenizer.ggml.*`, pre-tokenizer `deepseek-coder`), e.g. llama.cpp's
    /// ggml-vocab-deepseek-coder.gguf or any DeepSeek-Coder GGUF model file.
    ImportGguf {
        /// The .gguf file.
        file: PathBuf,
        /// Output tokenizer.json.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the token ids of a text (from --text or stdin).
    Encode {
        /// tokenizer.json, or a directory holding one.
        #[arg(long)]
        tokenizer: PathBuf,
        /// The text; read from stdin when absent.
        #[arg(long)]
        text: Option<String>,
        /// Prepend BOS as the model sees prompts (per tokenizer_config.json).
        #[arg(long)]
        bos: bool,
        /// Print JSON: ids and each id's token text.
        #[arg(long)]
        json: bool,
    },
    /// Print the text of token ids (special tokens shown).
    Decode {
        /// tokenizer.json, or a directory holding one.
        #[arg(long)]
        tokenizer: PathBuf,
        /// Ids, separated by spaces or commas.
        #[arg(required = true, num_args = 1..)]
        ids: Vec<String>,
        /// Drop special tokens (BOS, EOS, EOT) as `skip_special_tokens=True` does.
        #[arg(long)]
        skip_special: bool,
    },
}

fn load(path: &Path) -> Result<Tokenizer> {
    Ok(if path.is_dir() { Tokenizer::from_dir(path)? } else { Tokenizer::from_file(path)? })
}

/// Writes tokenizer.json to `out` and tokenizer_config.json beside it, each atomically.
fn write_pair(out: &Path, tokenizer: &serde_json::Value, config: &serde_json::Value) -> Result<()> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    AtomicFile::write_all_to(out, &serde_json::to_vec_pretty(tokenizer)?)?;
    AtomicFile::write_all_to(&out.with_file_name("tokenizer_config.json"), &serde_json::to_vec_pretty(config)?)?;
    Ok(())
}

/// The sample texts of a corpus, one shard in memory at a time.
struct CorpusTexts {
    shards: std::vec::IntoIter<PathBuf>,
    current: std::vec::IntoIter<String>,
    bar: indicatif::ProgressBar,
    error: std::sync::Arc<std::sync::Mutex<Option<anyhow::Error>>>,
}

impl Iterator for CorpusTexts {
    type Item = String;
    fn next(&mut self) -> Option<String> {
        loop {
            if let Some(t) = self.current.next() {
                self.bar.inc(1);
                return Some(t);
            }
            let shard = self.shards.next()?;
            match shard::read_all(&shard) {
                Ok(samples) => self.current = samples.into_iter().map(|s| s.text).collect::<Vec<_>>().into_iter(),
                Err(e) => {
                    // Stop feeding; the caller reports the error instead of a tokenizer trained
                    // on part of the corpus.
                    *self.error.lock().expect("error slot") = Some(e.into());
                    return None;
                }
            }
        }
    }
}

/// Runs a `kiln tokenizer` subcommand.
pub fn run(cmd: TokenizerCommand) -> Result<()> {
    match cmd {
        TokenizerCommand::Train { corpus, vocab_size, min_frequency, out } => {
            let manifest = Manifest::load(&corpus)
                .with_context(|| format!("{} is not a kiln corpus (build one with `kiln corpus build`)", corpus.display()))?;
            let bar = indicatif::ProgressBar::new(manifest.samples.kept);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} samples counted")
                    .expect("progress template is valid"),
            );
            let error = std::sync::Arc::new(std::sync::Mutex::new(None));
            let texts = CorpusTexts {
                shards: manifest.shard_paths(&corpus).into_iter(),
                current: Vec::new().into_iter(),
                bar: bar.clone(),
                error: error.clone(),
            };
            let opts = TrainOptions { vocab_size, min_frequency, ..TrainOptions::default() };
            let trained = train_bpe(texts, &opts);
            bar.finish_and_clear();
            if let Some(e) = error.lock().expect("error slot").take() {
                return Err(e.context("reading the corpus; no tokenizer written"));
            }
            let trained = trained?;
            write_pair(&out, &trained.tokenizer, &trained.config)?;
            eprintln!(
                "trained on {} samples: {} BPE ids + 9 role tokens; wrote {} and tokenizer_config.json",
                trained.texts,
                trained.bpe_ids,
                out.display()
            );
            Ok(())
        }
        TokenizerCommand::ImportGguf { file, out } => {
            let imported = import_gguf(&file)?;
            write_pair(&out, &imported.tokenizer, &imported.config)?;
            // Check what was written loads and says what it is.
            let tok = Tokenizer::from_file(&out)?;
            eprintln!("imported {} ids from {} into {} (special ids: {:?})", imported.ids, file.display(), out.display(), tok.special());
            Ok(())
        }
        TokenizerCommand::Encode { tokenizer, text, bos, json } => {
            let tok = load(&tokenizer)?;
            let text = match text {
                Some(t) => t,
                None => {
                    let mut s = String::new();
                    std::io::stdin().read_to_string(&mut s).context("reading stdin (pass --text or pipe UTF-8 text)")?;
                    s
                }
            };
            let ids = if bos { tok.encode(&text)? } else { tok.encode_raw(&text)? };
            if json {
                let pieces: Vec<String> = ids.iter().map(|&i| tok.decode(&[i], false)).collect::<Result<_, _>>()?;
                println!("{}", serde_json::json!({"ids": ids, "tokens": pieces}));
            } else {
                println!("{}", ids.iter().map(u32::to_string).collect::<Vec<_>>().join(" "));
            }
            Ok(())
        }
        TokenizerCommand::Decode { tokenizer, ids, skip_special } => {
            let tok = load(&tokenizer)?;
            let mut parsed = Vec::new();
            for piece in ids.iter().flat_map(|s| s.split([',', ' '])).filter(|s| !s.is_empty()) {
                let id: u32 = piece.trim().parse().with_context(|| format!("`{piece}` is not a token id"))?;
                if id as usize >= tok.id_count() {
                    bail!("token id {id} is out of range: {} has {} ids", tokenizer.display(), tok.id_count());
                }
                parsed.push(id);
            }
            println!("{}", tok.decode(&parsed, skip_special)?);
            Ok(())
        }
    }
}
