//! Packing a small corpus: window sizes, document reconstruction, the repository split,
//! FIM off, and byte-identical output across runs, thread counts and chunk sizes.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use kiln_corpus::shard::Sample;
use kiln_data::{pack_corpus, DataError, FimConfig, MegatronReader, PackConfig, PackSummary, Split, TokenizerFile};
use kiln_tokenizer::special::{FIM_BEGIN, FIM_HOLE};

/// 14 repositories, 1-4 samples each, over 2 shards; texts with multi-byte characters and one
/// with literal sentinel strings.
fn corpus() -> Vec<Vec<Sample>> {
    let mut shards = vec![Vec::new(), Vec::new()];
    let mut n = 0;
    for r in 0..14 {
        let repo = format!("org{}/project-{r}", r % 3);
        for f in 0..(r % 4 + 1) {
            let mut text = format!("# {repo} file {f}\n");
            for line in 0..(3 + (r * 7 + f * 5) % 13) {
                text.push_str(&format!("def f{line}(x):\n    return x * {line} + {r}  # ✓ 数 {f}\n"));
            }
            if r == 5 && f == 0 {
                text.push_str(&format!("TOKENS = ['{FIM_BEGIN}', '{FIM_HOLE}']  # 🦀\n"));
            }
            shards[n % 2].push(common::sample(&format!("{n:08x}-{repo}-{f}"), &repo, &text));
            n += 1;
        }
    }
    shards
}

fn config(seq_len: usize, rate: f64) -> PackConfig {
    PackConfig {
        seq_len,
        fim: FimConfig { rate, spm_rate: 0.3, seed: 9 },
        val_fraction: 0.4,
        split_seed: 1,
        chunk_docs: 4,
        stream_bytes: 16 << 20,
        order: kiln_data::FileOrder::Dependency,
    }
}

fn windows(dir: &Path, split: Split) -> Vec<Vec<u32>> {
    let r = MegatronReader::open(&PackSummary::prefix(dir, split)).unwrap();
    (0..r.len()).map(|i| r.sequence(i).unwrap()).collect()
}

/// A document recovered from the token stream by its BOS/sentinel/EOS ids alone.
#[derive(Debug)]
struct Recovered {
    /// The original text (prefix + middle + suffix), complete or, for the last, partial.
    text: String,
    complete: bool,
    fim: bool,
}

/// Splits a split's token stream at BOS ids and decodes each document's pieces separately.
fn recover(stream: &[u32], tok: &kiln_tokenizer::Tokenizer) -> Vec<Recovered> {
    let sp = tok.special();
    let (bos, eos) = (sp.bos.unwrap(), sp.eos.unwrap());
    let (b, h, e) = (sp.fim_begin.unwrap(), sp.fim_hole.unwrap(), sp.fim_end.unwrap());
    let dec = |ids: &[u32]| tok.decode(ids, false).unwrap();
    let mut docs = Vec::new();
    let starts: Vec<usize> = stream.iter().enumerate().filter(|(_, &t)| t == bos).map(|(i, _)| i).collect();
    assert_eq!(starts.first(), Some(&0), "a split's stream starts with BOS");
    for (k, &s) in starts.iter().enumerate() {
        let end = starts.get(k + 1).copied().unwrap_or(stream.len());
        let doc = &stream[s + 1..end];
        let complete = doc.last() == Some(&eos);
        let body = if complete { &doc[..doc.len() - 1] } else { doc };
        assert!(!body.contains(&eos), "EOS only ends documents");
        let pos = |id| body.iter().position(|&x| x == id);
        let (text, fim) = match (body.first(), pos(h), pos(e)) {
            (Some(&first), Some(ph), Some(pe)) if first == b && ph == 1 => (format!("{}{}", dec(&body[pe + 1..]), dec(&body[2..pe])), true), // SPM: suffix after prefix+middle
            (Some(&first), Some(ph), Some(pe)) if first == b => {
                (format!("{}{}{}", dec(&body[1..ph]), dec(&body[pe + 1..]), dec(&body[ph + 1..pe])), true)
            }
            (Some(&first), _, _) if first == b => (String::new(), true), // cut inside the FIM prompt
            _ => (dec(body), false),
        };
        docs.push(Recovered { text, complete, fim });
    }
    docs
}

#[test]
fn windows_reproduce_the_documents_and_repositories_stay_in_one_split() {
    let tmp = tempfile::tempdir().unwrap();
    let shards = corpus();
    common::write_corpus(&tmp.path().join("corpus"), &shards);
    let tf = TokenizerFile::load(&common::tokenizer_path()).unwrap();
    let out = tmp.path().join("packed");
    let cfg = config(24, 0.5);
    let summary = pack_corpus(&tmp.path().join("corpus"), &tf, &out, &cfg).unwrap();
    assert_eq!(PackSummary::load(&out).unwrap(), summary);

    let samples: Vec<&Sample> = shards.iter().flatten().collect();
    let order: Vec<&Sample> = {
        // Shard order, then row order.
        let mut v: Vec<&Sample> = shards[0].iter().collect();
        v.extend(shards[1].iter());
        v
    };
    let repo_of: HashMap<&str, &str> = samples.iter().map(|s| (s.text.as_str(), s.repo.as_str())).collect();
    let mut repos = HashMap::new();
    let mut fim_seen = 0;
    let mut literal_seen = false;
    for split in Split::ALL {
        let ws = windows(&out, split);
        let c = summary.split(split);
        assert_eq!(ws.len() as u64, c.windows);
        assert!(c.windows > 0, "{split} is empty: pick another split seed for this test corpus");
        assert!(ws.iter().all(|w| w.len() == cfg.seq_len + 1));
        assert_eq!(c.tokens, c.windows * (cfg.seq_len as u64 + 1) + c.dropped_tokens);
        assert!(c.dropped_tokens <= cfg.seq_len as u64);

        let stream: Vec<u32> = ws.concat();
        let docs = recover(&stream, &tf.tokenizer);
        // The split's samples, in corpus order.
        let split_repos: BTreeSet<&str> = docs.iter().filter(|d| d.complete).map(|d| repo_of[d.text.as_str()]).collect();
        repos.insert(split, split_repos.clone());
        let expected: Vec<&Sample> = order.iter().copied().filter(|s| split_repos.contains(s.repo.as_str())).collect();
        // Every complete document is the next sample of its split; a cut last one is a prefix.
        for (k, d) in docs.iter().enumerate() {
            if d.complete {
                assert_eq!(d.text, expected[k].text, "{split} document {k}");
            } else {
                assert_eq!(k, docs.len() - 1, "only the last document can be cut");
                assert!(d.fim || expected[k].text.starts_with(&d.text), "{split} cut document {k}");
            }
        }
        // Documents past the stream are only those of the dropped tail (fewer than a window).
        let recovered_complete = docs.iter().filter(|d| d.complete).count() as u64;
        assert!(recovered_complete <= c.documents && c.documents - recovered_complete <= c.dropped_tokens / 2 + 1);
        fim_seen += docs.iter().filter(|d| d.fim).count();
        literal_seen |= docs.iter().any(|d| d.complete && d.text.contains(FIM_BEGIN) && d.text.contains(FIM_HOLE));
    }
    assert!(fim_seen > 0, "no FIM document at rate 0.5");
    let both: Vec<_> = repos[&Split::Train].intersection(&repos[&Split::Val]).collect();
    assert!(both.is_empty(), "repositories in both splits: {both:?}");
    assert_eq!(summary.train.documents + summary.val.documents, samples.len() as u64);
    assert_eq!(summary.train.repos + summary.val.repos, 14);
    // The sample that spells sentinel strings came back with them as text.
    assert!(literal_seen, "the sample with literal sentinel strings was not recovered");
}

#[test]
fn the_stream_is_the_documents_layouts_in_order() {
    // Independent of the decoding above: the concatenated windows plus the dropped tail equal
    // the concatenation of each sample's layout, for the samples of the split, in order.
    let tmp = tempfile::tempdir().unwrap();
    let shards = corpus();
    common::write_corpus(&tmp.path().join("corpus"), &shards);
    let tf = TokenizerFile::load(&common::tokenizer_path()).unwrap();
    let cfg = config(16, 0.5);
    let summary = pack_corpus(&tmp.path().join("corpus"), &tf, &tmp.path().join("p"), &cfg).unwrap();
    let enc = kiln_data::DocEncoder::new(&tf.tokenizer).unwrap();
    for split in Split::ALL {
        let mut want = Vec::new();
        for s in shards.iter().flatten().filter(|s| Split::of_repo(&s.repo, cfg.val_fraction, cfg.split_seed) == split) {
            want.extend(cfg.fim.apply(&s.text, FimConfig::key_of(&s.id)).tokens(&enc, &s.id).unwrap());
        }
        let got = windows(&tmp.path().join("p"), split).concat();
        assert_eq!(got.len() as u64 + summary.split(split).dropped_tokens, want.len() as u64);
        assert_eq!(&want[..got.len()], &got[..]);
    }
}

#[test]
fn fim_rate_zero_gives_no_sentinel_ids() {
    let tmp = tempfile::tempdir().unwrap();
    common::write_corpus(&tmp.path().join("corpus"), &corpus());
    let tf = TokenizerFile::load(&common::tokenizer_path()).unwrap();
    let s = pack_corpus(&tmp.path().join("corpus"), &tf, &tmp.path().join("p"), &config(32, 0.0)).unwrap();
    assert_eq!(s.train.fim_documents + s.val.fim_documents, 0);
    let sp = tf.tokenizer.special();
    let sentinels = [sp.fim_begin.unwrap(), sp.fim_hole.unwrap(), sp.fim_end.unwrap()];
    for split in Split::ALL {
        for w in windows(&tmp.path().join("p"), split) {
            assert!(w.iter().all(|t| !sentinels.contains(t)), "sentinel id in a {split} window at FIM rate 0");
        }
    }
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn output_is_byte_identical_across_runs_threads_and_chunk_sizes() {
    let tmp = tempfile::tempdir().unwrap();
    common::write_corpus(&tmp.path().join("corpus"), &corpus());
    let tf = TokenizerFile::load(&common::tokenizer_path()).unwrap();
    let run_streamed = |name: &str, threads: usize, chunk: usize, stream_bytes: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let out = tmp.path().join(name);
        let cfg = PackConfig { chunk_docs: chunk, stream_bytes, ..config(20, 0.5) };
        pool.install(|| pack_corpus(&tmp.path().join("corpus"), &tf, &out, &cfg)).unwrap();
        files(&out)
    };
    let run = |name: &str, threads: usize, chunk: usize| run_streamed(name, threads, chunk, 16 << 20);
    let a = run("a", 1, 4);
    let names: Vec<&str> = a.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["meta.json", "train.bin", "train.idx", "val.bin", "val.idx"]);
    assert_eq!(run("b", 2, 4), a);
    assert_eq!(run("c", 2, 1), a);
    assert_eq!(run("d", 1, 1000), a);
    // Every sample streamed in segments of ~40 bytes (cut after newlines): same bytes, because
    // the tokenizer's pre-tokenizer isolates newlines.
    assert_eq!(run_streamed("s", 2, 4, 40), a);
    // Repacking over an existing output gives the same bytes.
    assert_eq!(run("a", 2, 3), a);
    // A different FIM seed changes the data (the test can fail).
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let cfg = PackConfig { fim: FimConfig { seed: 10, ..config(20, 0.5).fim }, ..config(20, 0.5) };
    pool.install(|| pack_corpus(&tmp.path().join("corpus"), &tf, &tmp.path().join("e"), &cfg)).unwrap();
    assert_ne!(files(&tmp.path().join("e")), a);
    // The other file orders: also the same bytes in memory and streamed, and not the
    // dependency order's.
    for order in [kiln_data::FileOrder::Random, kiln_data::FileOrder::File] {
        let run_order = |name: &str, stream_bytes: usize| {
            let out = tmp.path().join(name);
            let cfg = PackConfig { order, stream_bytes, ..config(20, 0.5) };
            pool.install(|| pack_corpus(&tmp.path().join("corpus"), &tf, &out, &cfg)).unwrap();
            files(&out)
        };
        let whole = run_order(&format!("{}-whole", order.name()), 16 << 20);
        assert_eq!(run_order(&format!("{}-streamed", order.name()), 40), whole, "{order:?}");
        assert_ne!(whole, a, "{order:?}");
    }
}

#[test]
fn meta_records_the_tokenizer_and_settings() {
    let tmp = tempfile::tempdir().unwrap();
    common::write_corpus(&tmp.path().join("corpus"), &corpus());
    // A directory holding tokenizer.json works too.
    let tf = TokenizerFile::load(common::tokenizer_path().parent().unwrap()).unwrap();
    let s = pack_corpus(&tmp.path().join("corpus"), &tf, &tmp.path().join("p"), &config(64, 0.5)).unwrap();
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(tmp.path().join("p/meta.json")).unwrap()).unwrap();
    assert_eq!(v["seq_len"], 64);
    assert_eq!(v["window_tokens"], 65);
    assert_eq!(v["dtype"], "uint16");
    assert_eq!(v["tokenizer"]["vocab_size"], tf.tokenizer.id_count());
    assert_eq!(v["tokenizer"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(v["fim"]["rate"], 0.5);
    assert_eq!(v["train"]["windows"], s.train.windows);
    assert!(tf.path.ends_with("tokenizer.json"));
}

#[test]
fn bad_inputs_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let tf = TokenizerFile::load(&common::tokenizer_path()).unwrap();
    common::write_corpus(&tmp.path().join("empty"), &[]);
    let err = pack_corpus(&tmp.path().join("empty"), &tf, &tmp.path().join("p"), &PackConfig::default()).unwrap_err();
    assert!(matches!(err, DataError::EmptyCorpus { .. }), "{err}");
    assert!(err.to_string().contains("empty"), "{err}");
    let err = pack_corpus(&tmp.path().join("nothing"), &tf, &tmp.path().join("p"), &PackConfig::default()).unwrap_err();
    assert!(err.to_string().contains("manifest.json"), "{err}");
    common::write_corpus(&tmp.path().join("c"), &corpus());
    let err = pack_corpus(&tmp.path().join("c"), &tf, &tmp.path().join("p"), &PackConfig { val_fraction: 2.0, ..PackConfig::default() })
        .unwrap_err();
    assert!(err.to_string().contains("val_fraction"), "{err}");
    let err =
        pack_corpus(&tmp.path().join("c"), &tf, &tmp.path().join("p"), &PackConfig { seq_len: 0, ..PackConfig::default() }).unwrap_err();
    assert!(err.to_string().contains("seq_len"), "{err}");
    assert!(!tmp.path().join("p/meta.json").exists());
}
