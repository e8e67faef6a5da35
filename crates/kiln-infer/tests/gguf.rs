//! GGUF models through kiln's own runtime, checked against llama.cpp.
//!
//! `tests/fixtures/gguf-greedy/expected.json` holds llama.cpp's greedy continuations of the
//! tiny-llama fixture's prompts, run on the GGUF files `kiln quantize` writes from that fixture
//! (f32, f16, q8_0, q4_0) and from a wider random model whose rows fit the k-quants (q4_k_m,
//! q8_0); made by `scripts/make_gguf_greedy_fixture.py`. Here kiln writes the same
//! files, loads them with `--model FILE.gguf`'s loader and decodes greedily through the engine: the
//! ids must be llama.cpp's. That proves three things at once: the file kiln writes means to
//! llama.cpp what it means to kiln (names, q/k row order, metadata, the embedded vocabulary), kiln
//! reads GGUF files as llama.cpp does, and the quantized products compute the same model.
//! Each comparison runs twice: with an f32 KV cache in both programs, and with their default f16
//! cache (which rounds queries, keys, values and attention weights the same way in both).
use std::path::{Path, PathBuf};

use kiln_infer::{Engine, GenerateParams, LoadedModel, SamplingParams};
use kiln_model::gguf_export::ExportType;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixture() -> PathBuf {
    workspace().join("tests/fixtures/tiny-llama")
}

/// Writes the model folder `dir` as a GGUF file of type `ty` (what `kiln quantize` does).
fn quantize(dir: &Path, ty: ExportType, out: &Path) {
    kiln_infer::loaded::quantize_dir(dir, ty, out).unwrap();
}

fn greedy(loaded: &LoadedModel, prompt: &[u32], n: usize) -> Vec<u32> {
    let engine = Engine::new(loaded.model.as_ref(), &loaded.tokenizer).unwrap();
    // EOS is an ordinary token here, as in the llama.cpp program that made the fixture.
    let params = GenerateParams { max_new_tokens: n, sampling: SamplingParams::default(), eos_ids: vec![], ..Default::default() };
    engine.generate(prompt, &params, |_| {}).unwrap().ids
}

/// The GGUF file `path` with a KV cache of `kv` (`None`: the default, f16).
fn load(path: &Path, kv: Option<kiln_model::KvType>) -> LoadedModel {
    let loaded = LoadedModel::load_gguf_with(path, None, kv).unwrap();
    let want = kv.unwrap_or(kiln_model::KvType::F16);
    assert_eq!(loaded.model.new_cache().as_any_mut().downcast_mut::<kiln_model::cpu_llama::CpuCache>().unwrap().kv_type(), want);
    loaded
}

/// kiln's greedy ids on `model` written as GGUF of each type in `ids` equal llama.cpp's (run
/// with the KV cache `kv`).
fn check_greedy(
    model: &Path,
    prompts: &[Vec<u32>],
    n: usize,
    ids: &serde_json::Map<String, serde_json::Value>,
    kv: Option<kiln_model::KvType>,
    tmp: &Path,
) {
    let only = std::env::var("KILN_GGUF_TYPE").ok();
    for (name, rows) in ids.iter().filter(|(n, _)| only.as_deref().is_none_or(|o| o == n.as_str())) {
        let ty = ExportType::parse(name).unwrap_or_else(|| panic!("unknown type {name} in expected.json"));
        let path = tmp.join(format!("{name}.gguf"));
        quantize(model, ty, &path);
        let loaded = load(&path, kv);
        let rows: Vec<Vec<u32>> = serde_json::from_value(rows.clone()).unwrap();
        assert_eq!(rows.len(), prompts.len());
        for (prompt, want) in prompts.iter().zip(&rows) {
            assert_eq!(want.len(), n);
            assert_eq!(&greedy(&loaded, prompt, n), want, "{} as {name}, KV cache {kv:?}: prompt {prompt:?}", model.display());
        }
    }
}

#[test]
fn kiln_gguf_files_decode_as_llama_cpp_decodes_them() {
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(workspace().join("tests/fixtures/gguf-greedy/expected.json")).unwrap()).unwrap();
    let n = expected["new_tokens"].as_u64().unwrap() as usize;
    let prompts: Vec<Vec<u32>> = serde_json::from_value(expected["prompts"].clone()).unwrap();
    let tmp = tempfile::tempdir().unwrap();

    // The tiny-llama fixture (rows of 64 and 176 values: the k-quants fall back).
    // f32 caches: the same ids. f16 caches: the two programs round the same operands to f16 but
    // sum and exponentiate in other orders, which is enough to part greedy runs on this tiny
    // model's near-ties (once in 256 tokens for q4_0), so each position is checked against
    // llama.cpp's own context instead (as the wide model's are, see NEAR_TIE).
    let ids = expected["ids"].as_object().unwrap();
    assert_eq!(ids.keys().collect::<Vec<_>>(), ["f16", "f32", "q4_0", "q8_0"]);
    check_greedy(&fixture(), &prompts, n, ids, Some(kiln_model::KvType::F32), tmp.path());
    let ids = expected["ids_f16_cache"].as_object().unwrap();
    assert_eq!(ids.keys().collect::<Vec<_>>(), ["f16", "f32", "q4_0", "q8_0"]);
    check_teacher_forced(&fixture(), &prompts, n, ids, None, tmp.path());

    // The wider random model (rows of 256 and 512: Q4_K and Q6_K are used), made as the
    // fixture script made it: `kiln model init --config wide-config.json --seed 7`.
    let wide = &expected["wide"];
    let cfg = kiln_model::Config::from_file(&workspace().join(wide["config"].as_str().unwrap())).unwrap();
    let model =
        kiln_model::Llama::random(cfg, kiln_model::WeightDType::F32, &candle_core::Device::Cpu, wide["seed"].as_u64().unwrap()).unwrap();
    let dir = tmp.path().join("wide");
    model.save(&dir, None).unwrap();
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(fixture().join(f), dir.join(f)).unwrap();
    }
    for (key, kv) in [("ids", Some(kiln_model::KvType::F32)), ("ids_f16_cache", None)] {
        let ids = wide[key].as_object().unwrap();
        assert_eq!(ids.keys().collect::<Vec<_>>(), ["q4_k_m", "q8_0"]);
        check_teacher_forced(&dir, &prompts, n, ids, kv, tmp.path());
    }
}

/// How far below kiln's best logit llama.cpp's choice may be on the wide model.
///
/// Why not the same ids, as on tiny-llama: the two programs' float functions differ in their
/// last bits (llama.cpp's vectorised `exp` in the softmax and SiLU, its f64 sum in RMSNorm), and
/// in a quantized model the activations are rounded to int8 before every product, so a value
/// that sits within 1e-7 of a half step now and then rounds the other way. On the wide model that
/// moves a logit by up to a few hundredths at a few positions out of a hundred, and its
/// random-weight logits are sometimes that close, where greedy runs part. So at each position,
/// with llama.cpp's ids as the context (teacher forcing): llama.cpp's choice is kiln's, or
/// within this of kiln's best.
const NEAR_TIE: f32 = 0.03;

/// kiln's logits on `model` as GGUF of each type in `ids`, fed llama.cpp's greedy ids, pick
/// llama.cpp's next id at nearly every position, and come within [`NEAR_TIE`] of it elsewhere.
fn check_teacher_forced(
    model: &Path,
    prompts: &[Vec<u32>],
    n: usize,
    ids: &serde_json::Map<String, serde_json::Value>,
    kv: Option<kiln_model::KvType>,
    tmp: &Path,
) {
    for (name, rows) in ids {
        let ty = ExportType::parse(name).unwrap_or_else(|| panic!("unknown type {name} in expected.json"));
        let path = tmp.join(format!("{name}.gguf"));
        quantize(model, ty, &path);
        let loaded = load(&path, kv);
        let v = loaded.model.config().vocab_size;
        let rows: Vec<Vec<u32>> = serde_json::from_value(rows.clone()).unwrap();
        let (mut same, mut worst) = (0, 0f32);
        for (prompt, want) in prompts.iter().zip(&rows) {
            let mut context = prompt.clone();
            context.extend(&want[..n - 1]);
            let logits = loaded.model.prefill_all(&context, loaded.model.new_cache().as_mut()).unwrap();
            for (i, &id) in want.iter().enumerate() {
                let row = &logits[(prompt.len() - 1 + i) * v..][..v];
                let behind = row.iter().copied().fold(f32::MIN, f32::max) - row[id as usize];
                assert!(behind <= NEAR_TIE, "{name}: prompt {prompt:?}, position {i}: llama.cpp chose {id}, {behind} below kiln's best");
                same += usize::from(behind == 0.0);
                worst = worst.max(behind);
            }
        }
        let total = n * prompts.len();
        eprintln!(
            "{} {name}, KV cache {kv:?}: kiln's choice is llama.cpp's at {same} of {total} positions; elsewhere at most {worst:.4} below",
            model.display()
        );
        assert!(same * 100 >= total * 95, "{name}: only {same} of {total} positions agree");
    }
}

#[test]
fn a_gguf_file_carries_its_tokenizer_and_config() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("tiny-q8_0.gguf");
    quantize(&fixture(), ExportType::Q8_0, &path);
    assert!(kiln_infer::loaded::is_gguf(&path));
    let from_gguf = LoadedModel::load_with(&path, None, &candle_core::Device::Cpu, None).unwrap();
    let from_dir = LoadedModel::load(&fixture(), None, &candle_core::Device::Cpu).unwrap();
    let text = "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n";
    assert_eq!(from_gguf.tokenizer.encode(text).unwrap(), from_dir.tokenizer.encode(text).unwrap());
    assert_eq!(from_gguf.eos_ids, from_dir.eos_ids);
    let (a, b) = (from_gguf.model.config(), from_dir.model.config());
    assert_eq!(
        (a.vocab_size, a.hidden_size, a.num_hidden_layers, a.num_attention_heads, a.num_key_value_heads, a.max_position_embeddings),
        (b.vocab_size, b.hidden_size, b.num_hidden_layers, b.num_attention_heads, b.num_key_value_heads, b.max_position_embeddings)
    );
    assert_eq!(a.rope_theta, b.rope_theta);
    // Stored as f32 in GGUF.
    assert!((a.rms_norm_eps - b.rms_norm_eps).abs() < 1e-12, "{} vs {}", a.rms_norm_eps, b.rms_norm_eps);
}

/// A copy of the GGUF file `src` with metadata edited by `meta` (return `None` to drop a key, or
/// a new value) and tensors kept where `keep` says so.
fn rewrite(
    src: &Path,
    dest: &Path,
    mut meta: impl FnMut(&str, &kiln_gguf::Value) -> Option<kiln_gguf::Value>,
    mut keep: impl FnMut(&str) -> bool,
) {
    let file = kiln_gguf::GgufFile::open(src).unwrap();
    let mut w = kiln_gguf::GgufWriter::new();
    for (k, v) in file.metadata() {
        if let Some(v) = meta(k, v) {
            w.add_metadata(k, v);
        }
    }
    for t in file.tensors() {
        let t = t.unwrap();
        if keep(t.name) {
            w.add_tensor(t.name, t.dims, t.ggml_type, t.bytes.to_vec());
        }
    }
    w.write(dest).unwrap();
}

fn load_err(path: &Path, tokenizer: Option<&Path>) -> String {
    match LoadedModel::load_with(path, None, &candle_core::Device::Cpu, tokenizer) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_gguf_files_are_refused_with_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good.gguf");
    quantize(&fixture(), ExportType::Q8_0, &good);
    let same = |_: &str, v: &kiln_gguf::Value| Some(v.clone());

    // Another architecture: named with its key.
    let other = tmp.path().join("other-arch.gguf");
    rewrite(&good, &other, |k, v| if k == "general.architecture" { Some("qwen2".into()) } else { Some(v.clone()) }, |_| true);
    let e = load_err(&other, None);
    assert!(e.contains("general.architecture") && e.contains("qwen2") && e.contains("other-arch.gguf"), "{e}");

    // No tokenizer metadata: refused unless --tokenizer is given, which then works.
    let bare = tmp.path().join("no-tokenizer.gguf");
    rewrite(&good, &bare, |k, v| if k.starts_with("tokenizer.") { None } else { Some(v.clone()) }, |_| true);
    let e = load_err(&bare, None);
    assert!(e.contains("no tokenizer") && e.contains("--tokenizer"), "{e}");
    LoadedModel::load_with(&bare, None, &candle_core::Device::Cpu, Some(&fixture())).unwrap();

    // A vocabulary that does not belong to the weights.
    let short = tmp.path().join("short-vocab.gguf");
    rewrite(
        &good,
        &short,
        |k, v| match v {
            kiln_gguf::Value::Array(a) if ["tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type"].contains(&k) => {
                Some(kiln_gguf::Value::Array(drop_last(a)))
            }
            _ => Some(v.clone()),
        },
        |_| true,
    );
    let e = load_err(&short, None);
    assert!(e.contains("token_embd") && e.contains("tokens"), "{e}");

    // A missing tensor is named.
    let missing = tmp.path().join("missing.gguf");
    rewrite(&good, &missing, same, |n| n != "blk.1.ffn_up.weight");
    let e = load_err(&missing, None);
    assert!(e.contains("blk.1.ffn_up.weight"), "{e}");

    // Truncated: the error names the file and the tensor data that runs past its end; no crash.
    let bytes = std::fs::read(&good).unwrap();
    for cut in [bytes.len() - 1, bytes.len() / 2, 100, 7] {
        let truncated = tmp.path().join(format!("truncated-{cut}.gguf"));
        std::fs::write(&truncated, &bytes[..cut]).unwrap();
        let e = load_err(&truncated, Some(&fixture()));
        assert!(e.contains(&format!("truncated-{cut}.gguf")), "{e}");
    }
}

/// `a` without its last element (the tokenizer arrays kiln writes: strings, f32, i32).
fn drop_last(a: &kiln_gguf::Array) -> kiln_gguf::Array {
    use kiln_gguf::Array as A;
    match a {
        A::String(v) => A::String(v[..v.len() - 1].to_vec()),
        A::F32(v) => A::F32(v[..v.len() - 1].to_vec()),
        A::I32(v) => A::I32(v[..v.len() - 1].to_vec()),
        other => panic!("unexpected tokenizer array {}", other.describe()),
    }
}

/// The GGUF file `kiln quantize` writes, read by gguf-py's `GGUFReader` (llama.cpp's Python
/// package, independent of kiln): its keys, tensor names, types and dims. Skipped, loudly, when
/// python3 with `gguf` is missing (CI installs it: `pip install gguf==0.19.0`).
#[test]
fn gguf_py_reads_what_kiln_quantize_writes() {
    let has_gguf = std::process::Command::new("python3").args(["-c", "import gguf"]).output().is_ok_and(|o| o.status.success());
    if !has_gguf {
        eprintln!("SKIPPING gguf_py_reads_what_kiln_quantize_writes: python3 with the `gguf` package not found (pip install gguf==0.19.0)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("tiny-q4_0.gguf");
    quantize(&fixture(), ExportType::Q4_0, &path);
    let script = workspace().join("crates/kiln-gguf/tests/gguf_reader_check.py");
    let out = std::process::Command::new("python3").arg(&script).arg(&path).output().unwrap();
    assert!(out.status.success(), "gguf-py failed: {}", String::from_utf8_lossy(&out.stderr));
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let field = |key: &str| seen["fields"].as_array().unwrap().iter().find(|f| f["key"] == key).map(|f| f["value"].clone());
    assert_eq!(field("general.architecture"), Some("llama".into()));
    assert_eq!(field("tokenizer.ggml.model"), Some("gpt2".into()));
    assert_eq!(field("tokenizer.ggml.pre"), Some("deepseek-coder".into()));
    assert_eq!(field("llama.block_count"), Some(2.into()));
    assert_eq!(field("llama.embedding_length"), Some(64.into()));
    assert_eq!(field("tokenizer.ggml.tokens").unwrap().as_array().unwrap().len(), 512);

    let ours = kiln_gguf::GgufFile::open(&path).unwrap();
    let theirs = seen["tensors"].as_array().unwrap();
    assert_eq!(theirs.len(), ours.tensor_infos().len());
    for (t, info) in theirs.iter().zip(ours.tensor_infos()) {
        assert_eq!(t["name"], info.name());
        assert_eq!(t["type"].as_str().unwrap(), info.type_name().unwrap().to_uppercase(), "{}", info.name());
        let shape: Vec<usize> = serde_json::from_value(t["shape"].clone()).unwrap();
        assert_eq!(shape, info.dims(), "{}", info.name());
    }
    // The mix: Q4_0 matrices, F32 norms, the 176-wide ffn_down in F16, the head in Q8_0.
    let ty = |name: &str| theirs.iter().find(|t| t["name"] == name).unwrap()["type"].as_str().unwrap().to_string();
    assert_eq!(
        [ty("blk.0.attn_q.weight"), ty("blk.0.attn_norm.weight"), ty("blk.0.ffn_down.weight"), ty("output.weight")],
        ["Q4_0", "F32", "F16", "Q8_0"]
    );
}
