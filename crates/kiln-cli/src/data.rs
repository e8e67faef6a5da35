//! `kiln data pack | inspect | sft`: kiln-data's packing, dataset reader and SFT samples, wired to flags.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Subcommand, ValueEnum};
use kiln_data::{pack_corpus, FimConfig, MegatronReader, PackConfig, PackSummary, Split, TokenizerFile};

/// Layout of FIM documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FimMode {
    /// `<fim_begin> prefix <fim_hole> suffix <fim_end> middle` (DeepSeek-Coder's choice).
    Psm,
    /// `<fim_begin><fim_hole> suffix <fim_end> prefix middle` (Bavarian et al. SPM variant 2).
    Spm,
}

/// A packed split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SplitArg {
    /// `train.bin/.idx`.
    Train,
    /// `val.bin/.idx`.
    Val,
}

impl From<SplitArg> for Split {
    fn from(s: SplitArg) -> Split {
        match s {
            SplitArg::Train => Split::Train,
            SplitArg::Val => Split::Val,
        }
    }
}

/// `kiln data ...`
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Pack a corpus (the --out of `kiln corpus build`) into training windows: FIM per sample,
    /// tokenize, cut into windows of seq_len + 1 tokens, split train/val by repository; writes
    /// train.bin/.idx, val.bin/.idx (Megatron-LM format) and meta.json to --out.
    Pack {
        /// A finished corpus directory (with manifest.json).
        #[arg(long)]
        corpus: PathBuf,
        /// tokenizer.json, or a model directory containing it.
        #[arg(long)]
        tokenizer: PathBuf,
        /// Model context length; each stored window has seq_len + 1 tokens (inputs and shifted targets).
        #[arg(long, default_value_t = 4096)]
        seq_len: usize,
        /// Fraction of samples FIM-transformed (DeepSeek-Coder: 0.5; 0 disables FIM).
        #[arg(long, default_value_t = 0.5)]
        fim_rate: f64,
        /// Layout of the FIM samples.
        #[arg(long, value_enum, default_value_t = FimMode::Psm)]
        fim_mode: FimMode,
        /// Fraction of repositories held out for validation (0: no val split).
        #[arg(long, default_value_t = 0.01)]
        val_fraction: f64,
        /// How a repository's files become documents: dependency (one document per repository,
        /// files in dependency order: the paper's), random (the same files shuffled), file (one
        /// document per file: file-level pre-training).
        #[arg(long, default_value = "dependency", value_parser = parse_order)]
        order: kiln_data::FileOrder,
        /// Seed of the FIM draws and of the repository split.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print one packed window as text, with BOS/EOS and FIM sentinels visible.
    Inspect {
        /// A `kiln data pack` output directory.
        dir: PathBuf,
        /// Window number (0-based, in file order).
        #[arg(long, default_value_t = 0)]
        window: usize,
        /// Which split.
        #[arg(long, value_enum, default_value_t = SplitArg::Train)]
        split: SplitArg,
        /// Tokenizer to decode with (default: the one recorded in meta.json; must be the same file).
        #[arg(long)]
        tokenizer: Option<PathBuf>,
    },
    /// Tokenize instruction-tuning conversations with DeepSeek-Coder-Instruct's template and a
    /// loss mask over the responses (+ <|EOT|>); writes train/val .bin/.idx/.mask and the
    /// tokenizer beside them, for `kiln train --init MODEL --data OUT`.
    Sft {
        /// JSONL, one conversation per line: {"instruction": ..., "output": ...} (the DeepSeek
        /// fine-tuning script's fields) or {"messages": [{"role": "system"|"user"|"assistant",
        /// "content": ...}, ...]}.
        #[arg(long)]
        input: PathBuf,
        /// tokenizer.json, or a model directory containing it (needs BOS and <|EOT|>).
        #[arg(long)]
        tokenizer: PathBuf,
        /// Fraction of conversations held out for validation.
        #[arg(long, default_value_t = 0.0)]
        val_fraction: f64,
        /// Seed of the validation draw.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
}

fn sft(input: PathBuf, tokenizer: PathBuf, val_fraction: f64, seed: u64, out: PathBuf) -> Result<()> {
    if !(0.0..=1.0).contains(&val_fraction) {
        bail!("--val-fraction {val_fraction} must be between 0 and 1");
    }
    let built = kiln_data::sft::build_sft(&input, &tokenizer, val_fraction, seed, &out)?;
    eprintln!("{} train and {} val conversations ({}); {}", built.train, built.val, built.dtype.name(), out.display());
    Ok(())
}

/// Runs a `kiln data` subcommand.
pub fn run(cmd: DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Sft { input, tokenizer, val_fraction, seed, out } => sft(input, tokenizer, val_fraction, seed, out),
        DataCommand::Pack { corpus, tokenizer, seq_len, fim_rate, fim_mode, val_fraction, order, seed, out } => {
            let tokenizer = TokenizerFile::load(&tokenizer)?;
            let spm_rate = match fim_mode {
                FimMode::Psm => 0.0,
                FimMode::Spm => 1.0,
            };
            let cfg = PackConfig {
                seq_len,
                fim: FimConfig { rate: fim_rate, spm_rate, seed },
                val_fraction,
                split_seed: seed,
                order,
                ..PackConfig::default()
            };
            let s = pack_corpus(&corpus, &tokenizer, &out, &cfg)?;
            for split in Split::ALL {
                let c = s.split(split);
                eprintln!(
                    "{split}: {} windows of {} tokens ({} dropped) from {} samples of {} repos, {} FIM",
                    c.windows, s.window_tokens, c.dropped_tokens, c.documents, c.repos, c.fim_documents
                );
            }
            eprintln!("{} ({}); {}", out.display(), s.dtype.name(), out.join("meta.json").display());
            Ok(())
        }
        DataCommand::Inspect { dir, window, split, tokenizer } => {
            let meta = PackSummary::load(&dir)?;
            let path = tokenizer.unwrap_or_else(|| meta.tokenizer.path.clone());
            let tf = TokenizerFile::load(&path)?;
            if tf.sha256 != meta.tokenizer.sha256 {
                bail!(
                    "{} (sha256 {}) is not the tokenizer these windows were packed with ({}, sha256 {}); pass that file with --tokenizer",
                    tf.path.display(),
                    tf.sha256,
                    meta.tokenizer.path.display(),
                    meta.tokenizer.sha256
                );
            }
            let split = Split::from(split);
            let reader = MegatronReader::open(&PackSummary::prefix(&dir, split))?;
            let ids = reader.sequence(window)?;
            let text = tf.tokenizer.decode(&ids, false)?;
            println!("=== {split} window {window} of {} ({} tokens)", reader.len(), ids.len());
            println!("{text}");
            Ok(())
        }
    }
}

fn parse_order(s: &str) -> std::result::Result<kiln_data::FileOrder, String> {
    s.parse()
}
