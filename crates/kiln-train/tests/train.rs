//! The trainer against PyTorch (tests/fixtures/train-parity, made by
//! scripts/make_train_fixture.py), on a learnable task, and across a resume.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use kiln_data::megatron::{DType as TokenType, MegatronWriter};
use kiln_model::{Config, Llama, Preset, WeightDType};
use kiln_train::optim::{clip_global_norm, AdamW, AdamWConfig};
use kiln_train::trainer::Quiet;
use kiln_train::{ModelInit, Schedule, ScheduleKind, TrainConfig, TrainModel, Trainer};

mod common;
use common::{config, small_model};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/train-parity")
}

fn max_abs(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap()
}

/// Loss and every gradient of the first step, then 10 AdamW steps with clipping and the step
/// schedule, against torch 2.15 / transformers 4.57.6 on the same weights and batch.
#[test]
fn loss_gradients_and_ten_steps_match_pytorch() {
    let dev = Device::Cpu;
    let expected: serde_json::Value = serde_json::from_slice(&std::fs::read(fixture().join("expected.json")).unwrap()).unwrap();
    let batch: serde_json::Value = serde_json::from_slice(&std::fs::read(fixture().join("batch.json")).unwrap()).unwrap();
    let windows: Vec<Vec<u32>> = serde_json::from_value(batch["windows"].clone()).unwrap();
    let model = TrainModel::load(&fixture().join("model"), &dev).unwrap();

    let (loss0, grads) = model.loss_and_grads(&windows).unwrap();
    let want0 = expected["loss0"].as_f64().unwrap();
    assert!((loss0 - want0).abs() < 1e-5, "loss {loss0} vs torch {want0}");
    let torch_grads = candle_core::safetensors::load(fixture().join("grads.safetensors"), &dev).unwrap();
    assert_eq!(torch_grads.len(), model.params.len());
    for ((name, _), g) in model.params.iter().zip(&grads) {
        let want = &torch_grads[name];
        let scale = want.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap().max(1e-3);
        let d = max_abs(g, want);
        assert!(d <= 1e-4 * scale, "gradient of {name}: max-abs diff {d} (scale {scale})");
    }

    let schedule = Schedule { max_lr: 1e-2, warmup_steps: 3, total_steps: 10, kind: ScheduleKind::Step };
    let mut opt = AdamW::new(&model.params, AdamWConfig::default()).unwrap();
    for s in 0..10 {
        let (loss, mut grads) = model.loss_and_grads(&windows).unwrap();
        let norm = clip_global_norm(&mut grads, 1.0).unwrap();
        let lr = schedule.lr(s);
        let (wl, wn, wlr) =
            (expected["losses"][s].as_f64().unwrap(), expected["grad_norms"][s].as_f64().unwrap(), expected["lrs"][s].as_f64().unwrap());
        assert!((lr - wlr).abs() < 1e-12, "step {s}: lr {lr} vs {wlr}");
        assert!((loss - wl).abs() < 1e-4 * wl.max(1.0), "step {s}: loss {loss} vs torch {wl}");
        assert!((norm - wn).abs() < 1e-4 * wn, "step {s}: grad norm {norm} vs torch {wn}");
        opt.step(&grads, lr).unwrap();
    }
    let final_params = candle_core::safetensors::load(fixture().join("final_params.safetensors"), &dev).unwrap();
    for (name, var) in &model.params {
        let d = max_abs(var.as_tensor(), &final_params[name]);
        assert!(d < 1e-4, "{name} after 10 steps: max-abs diff {d}");
    }
}

/// Windows of 17 tokens counting up mod 16 from a random start: every target follows from the
/// token before it, so the loss can go to ~0 (from ln 32 ≈ 3.47).
fn counting_data(dir: &Path, windows: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let mut w = MegatronWriter::create(&dir.join("train"), TokenType::U16).unwrap();
    let mut state = 12345u64;
    for _ in 0..windows {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let start = (state >> 33) as u32 % 16;
        let ids: Vec<u32> = (0..17).map(|i| 2 + (start + i) % 16).collect();
        w.add_document(&ids).unwrap();
    }
    w.finish().unwrap();
}

fn train_losses(run: &Path) -> Vec<f64> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|m| m["kind"] == "train")
        .map(|m| m["loss"].as_f64().unwrap())
        .collect()
}

#[test]
fn a_learnable_task_is_learned_and_the_checkpoint_loads() {
    let tmp = tempfile::tempdir().unwrap();
    small_model(&tmp.path().join("init"));
    counting_data(&tmp.path().join("data"), 256);
    let run = tmp.path().join("run");
    let mut cfg = config(tmp.path(), 150);
    cfg.accumulation = 2;
    cfg.checkpoint_every = 50;
    let mut t = Trainer::create(&run, cfg, &Device::Cpu).unwrap();
    let state = t.run(None, &Quiet).unwrap();
    assert_eq!(state.step, 150);
    assert_eq!(state.tokens_seen, 150 * 2 * 8 * 16);
    let losses = train_losses(&run);
    assert_eq!(losses.len(), 150);
    let last: f64 = losses[140..].iter().sum::<f64>() / 10.0;
    assert!(losses[0] > 3.0, "starts near ln 32: {}", losses[0]);
    assert!(last < 0.2, "the counting task is learned: mean loss of the last 10 steps {last}");
    // keep_last 2: checkpoints 100 and 150 remain; the final one is a loadable model directory.
    let mut names: Vec<String> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("checkpoint-"))
        .collect();
    names.sort();
    assert_eq!(names, ["checkpoint-00000100", "checkpoint-00000150"]);
    assert_eq!(std::fs::read_to_string(run.join("latest")).unwrap(), "checkpoint-00000150");
    let ckpt = run.join("checkpoint-00000150");
    let model = Llama::load(&ckpt, None, &Device::Cpu).unwrap();
    // Greedy continuation of 2,3,4 counts on.
    let ids = Tensor::new(&[[5u32, 6, 7]], &Device::Cpu).unwrap();
    let next = model.forward_last(&ids, &mut model.new_cache()).unwrap().argmax(1).unwrap().to_vec1::<u32>().unwrap();
    assert_eq!(next, [8]);
}

/// bf16 compute with f32 master weights learns the same task, and its checkpoints hold the
/// f32 master weights.
#[test]
fn bf16_compute_learns_and_saves_f32_weights() {
    let tmp = tempfile::tempdir().unwrap();
    small_model(&tmp.path().join("init"));
    counting_data(&tmp.path().join("data"), 256);
    let run = tmp.path().join("run");
    let mut cfg = config(tmp.path(), 150);
    cfg.accumulation = 2;
    cfg.precision = kiln_train::Precision::Bf16;
    Trainer::create(&run, cfg, &Device::Cpu).unwrap().run(None, &Quiet).unwrap();
    let losses = train_losses(&run);
    let last: f64 = losses[140..].iter().sum::<f64>() / 10.0;
    assert!(last < 0.3, "bf16: mean loss of the last 10 steps {last}");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("checkpoint-00000150/config.json")).unwrap()).unwrap();
    assert_eq!(saved["torch_dtype"], "float32");
}

#[test]
fn a_resumed_run_continues_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    small_model(&tmp.path().join("init"));
    counting_data(&tmp.path().join("data"), 40);
    let mut cfg = config(tmp.path(), 12);
    cfg.checkpoint_every = 6;
    // Uninterrupted.
    let whole = tmp.path().join("whole");
    Trainer::create(&whole, cfg.clone(), &Device::Cpu).unwrap().run(None, &Quiet).unwrap();
    // Stopped after step 6 (a checkpoint), then resumed from disk.
    let split = tmp.path().join("split");
    Trainer::create(&split, cfg.clone(), &Device::Cpu).unwrap().run(Some(6), &Quiet).unwrap();
    let mut resumed = Trainer::resume(&split, &Device::Cpu).unwrap();
    assert_eq!(resumed.state().step, 6);
    resumed.run(None, &Quiet).unwrap();
    let (a, b) = (train_losses(&whole), train_losses(&split));
    assert_eq!(a.len(), 12);
    assert_eq!(b, a, "loss trajectory after resume equals the uninterrupted run's");
    // Weights at the end are identical too.
    let wa = candle_core::safetensors::load(whole.join("checkpoint-00000012/model.safetensors"), &Device::Cpu).unwrap();
    let wb = candle_core::safetensors::load(split.join("checkpoint-00000012/model.safetensors"), &Device::Cpu).unwrap();
    for (name, t) in &wa {
        assert_eq!(max_abs(t, &wb[name]), 0.0, "{name}");
    }
}

/// Re-planning the length of a run before its decay gives the same run as planning that length
/// from the start (the LR of the steps taken does not change), survives a resume, and is refused
/// once the decay has begun.
#[test]
fn a_run_replanned_before_its_decay_equals_one_planned_so() {
    let tmp = tempfile::tempdir().unwrap();
    small_model(&tmp.path().join("init"));
    counting_data(&tmp.path().join("data"), 40);
    let planned = tmp.path().join("planned");
    Trainer::create(&planned, config(tmp.path(), 16), &Device::Cpu).unwrap().run(None, &Quiet).unwrap();
    let replanned = tmp.path().join("replanned");
    let mut cfg = config(tmp.path(), 30);
    cfg.checkpoint_every = 4;
    let mut t = Trainer::create(&replanned, cfg, &Device::Cpu).unwrap();
    t.run(Some(4), &Quiet).unwrap();
    t.replan_steps(16).unwrap();
    drop(t);
    let mut t = Trainer::resume(&replanned, &Device::Cpu).unwrap();
    assert_eq!(t.cfg.steps, 16, "config.json holds the new plan");
    t.run(None, &Quiet).unwrap();
    assert_eq!(train_losses(&replanned), train_losses(&planned));
    // After 80% of the plan the step decay has begun: no re-planning.
    let e = t.replan_steps(40).unwrap_err().to_string();
    assert!(e.contains("cannot re-plan"), "{e}");
}

#[test]
fn bad_runs_are_refused_with_reasons() {
    let tmp = tempfile::tempdir().unwrap();
    small_model(&tmp.path().join("init"));
    counting_data(&tmp.path().join("data"), 8);
    // Windows longer than the model's positions.
    let long = tmp.path().join("long");
    std::fs::create_dir_all(&long).unwrap();
    let mut w = MegatronWriter::create(&long.join("train"), TokenType::U16).unwrap();
    w.add_document(&vec![2u32; 100]).unwrap();
    w.finish().unwrap();
    let mut cfg = config(tmp.path(), 4);
    cfg.data = long;
    let e = Trainer::create(&tmp.path().join("r1"), cfg.clone(), &Device::Cpu).err().expect("refused").to_string();
    assert!(e.contains("max_position_embeddings"), "{e}");
    // The long-context stage makes the same data fit: 128 positions, RoPE interpolated by 2.
    cfg.extend_context = Some(kiln_train::ContextExtension { max_position_embeddings: 128, rope_linear_factor: 2.0 });
    let long_run = tmp.path().join("r1b");
    Trainer::create(&long_run, cfg, &Device::Cpu).unwrap().run(None, &Quiet).unwrap();
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(long_run.join("checkpoint-00000004/config.json")).unwrap()).unwrap();
    assert_eq!(saved["max_position_embeddings"], 128);
    assert_eq!(saved["rope_scaling"]["factor"], 2.0, "{saved}");
    // A second run in the same directory.
    let run = tmp.path().join("r2");
    Trainer::create(&run, config(tmp.path(), 2), &Device::Cpu).unwrap().run(None, &Quiet).unwrap();
    let e = Trainer::create(&run, config(tmp.path(), 2), &Device::Cpu).err().expect("refused").to_string();
    assert!(e.contains("already holds a run"), "{e}");
    // A damaged optimizer state: resume names the file.
    std::fs::write(run.join("checkpoint-00000002/optimizer.safetensors"), b"junk").unwrap();
    let e = Trainer::resume(&run, &Device::Cpu).err().expect("refused").to_string();
    assert!(e.contains("optimizer.safetensors"), "{e}");
    // Resume of a directory without a run.
    let e = Trainer::resume(&tmp.path().join("nothing"), &Device::Cpu).err().expect("refused").to_string();
    assert!(e.contains("not a kiln training run"), "{e}");
    let _ = HashMap::<String, f64>::new();
}

/// SFT: conversations whose instructions are random digits and whose response is always the
/// same; the loss counts only the response (+ EOT) tokens, so it can go to ~0 even though the
/// prompts are unpredictable.
#[test]
fn sft_learns_the_responses_only() {
    use kiln_data::sft::{tokenize_conversation, SftWriter};
    use kiln_tokenizer::special::Role;
    let tmp = tempfile::tempdir().unwrap();
    let tok = kiln_tokenizer::Tokenizer::from_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny-llama")).unwrap();
    let enc = kiln_data::DocEncoder::new(&tok).unwrap();
    let data = tmp.path().join("sft");
    std::fs::create_dir_all(&data).unwrap();
    let mut w = SftWriter::create(&data.join("train"), TokenType::U16).unwrap();
    let mut state = 99u64;
    let mut expected_targets = 0;
    for _ in 0..64 {
        let digits: String = (0..8)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                char::from(b'0' + ((state >> 33) % 10) as u8)
            })
            .collect();
        let s = tokenize_conversation(&enc, &[(Role::System, "sys"), (Role::User, &digits), (Role::Assistant, "ok done")]).unwrap();
        expected_targets = s.target_tokens();
        w.add(&s).unwrap();
    }
    w.finish().unwrap();
    // A model for the fixture tokenizer's 409 ids.
    let init = tmp.path().join("init");
    let mut cfg = Config::preset(Preset::Tiny);
    (cfg.vocab_size, cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers) = (448, 48, 96, 2);
    (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim, cfg.max_position_embeddings) = (4, 4, 12, 128);
    (cfg.bos_token_id, cfg.eos_token_ids, cfg.pad_token_id) = (Some(400), vec![408], Some(401));
    Llama::random(cfg, WeightDType::F32, &Device::Cpu, 1).unwrap().save(&init, None).unwrap();
    let mut tc = TrainConfig::new(data, ModelInit::Dir(init), 80, 1e-2);
    tc.schedule.warmup_steps = 5;
    let run = tmp.path().join("run");
    let mut t = Trainer::create(&run, tc, &Device::Cpu).unwrap();
    let state = t.run(None, &Quiet).unwrap();
    // tokens_seen counts the masked targets: the same number in every conversation.
    assert_eq!(state.tokens_seen, 80 * 8 * expected_targets as u64);
    let losses = train_losses(&run);
    let last: f64 = losses[70..].iter().sum::<f64>() / 10.0;
    assert!(losses[0] > 3.0, "{}", losses[0]);
    assert!(last < 0.1, "responses learned: mean masked loss of the last 10 steps {last}");
}

/// A checkpoint kiln writes loads in transformers and gives kiln's logits (runs when python3
/// has torch and transformers; `pip install -r scripts/requirements-fixtures.txt`).
#[test]
fn checkpoints_load_in_transformers() {
    let probe = std::process::Command::new("python3").args(["-c", "import torch, transformers"]).output();
    if !probe.map(|o| o.status.success()).unwrap_or(false) {
        eprintln!("SKIPPING checkpoints_load_in_transformers: python3 with torch + transformers not found (pip install -r scripts/requirements-fixtures.txt)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    small_model(&tmp.path().join("init"));
    counting_data(&tmp.path().join("data"), 16);
    let run = tmp.path().join("run");
    Trainer::create(&run, config(tmp.path(), 3), &Device::Cpu).unwrap().run(None, &Quiet).unwrap();
    let ckpt = run.join("checkpoint-00000003");
    let ids = [3u32, 4, 5, 6, 9, 2];
    let model = Llama::load(&ckpt, None, &Device::Cpu).unwrap();
    let ours = model
        .forward(&Tensor::new(&[ids], &Device::Cpu).unwrap(), &mut model.new_cache())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let script = format!(
        "import json, torch, transformers\n\
         m = transformers.LlamaForCausalLM.from_pretrained({:?}, torch_dtype=torch.float32).eval()\n\
         with torch.no_grad():\n    print(json.dumps(m(torch.tensor([{:?}])).logits.flatten().tolist()))\n",
        ckpt.to_str().unwrap(),
        ids
    );
    let out = std::process::Command::new("python3").args(["-c", &script]).output().unwrap();
    assert!(out.status.success(), "transformers failed to load the checkpoint: {}", String::from_utf8_lossy(&out.stderr));
    let theirs: Vec<f32> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(theirs.len(), ours.len());
    let diff = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(diff < 1e-4, "kiln vs transformers logits: max-abs {diff}");
}

/// An absurd learning rate blows the weights up after one update: the following non-finite steps
/// are skipped and reported in the metrics, the run stops after `max_bad_steps` in a row, and the
/// last good checkpoint stays loadable.
#[test]
fn divergence_is_detected_and_the_last_good_checkpoint_survives() {
    let tmp = tempfile::tempdir().unwrap();
    small_model(&tmp.path().join("init"));
    counting_data(&tmp.path().join("data"), 16);
    let mut cfg = config(tmp.path(), 20);
    cfg.schedule.max_lr = 1e30;
    cfg.schedule.warmup_steps = 0;
    cfg.checkpoint_every = 1;
    let run = tmp.path().join("run");
    let err = Trainer::create(&run, cfg, &Device::Cpu).unwrap().run(None, &Quiet).expect_err("diverges");
    assert!(matches!(err, kiln_train::TrainError::Diverged { count: 3, .. }), "{err}");
    assert!(err.to_string().contains("last good checkpoint"), "{err}");
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(run.join("metrics.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0]["skipped"], false);
    assert!(lines[1..].iter().all(|m| m["skipped"] == true), "{lines:?}");
    assert_eq!(std::fs::read_to_string(run.join("latest")).unwrap(), "checkpoint-00000001");
    Llama::load(&run.join("checkpoint-00000001"), None, &Device::Cpu).unwrap();
}

/// TensorBoard's own reader (the `tensorboard` package's EventAccumulator) reads the event files
/// with the values of `metrics.jsonl`; a run stopped between checkpoints and resumed shows each
/// step once, with the same values as an uninterrupted run.
#[test]
fn tensorboard_reads_the_scalars_of_metrics_jsonl_across_a_resume() {
    const READ: &str = "import json, sys\n\
        from tensorboard.backend.event_processing import event_accumulator as ea\n\
        acc = ea.EventAccumulator(sys.argv[1], size_guidance={ea.SCALARS: 0})\n\
        acc.Reload()\n\
        print(json.dumps({t: [[e.step, e.value] for e in acc.Scalars(t)] for t in acc.Tags()['scalars']}))\n";
    let probe = std::process::Command::new("python3").args(["-c", "import tensorboard"]).output();
    if !probe.map(|o| o.status.success()).unwrap_or(false) {
        eprintln!("SKIPPING tensorboard_reads_the_scalars_of_metrics_jsonl_across_a_resume: python3 with the tensorboard package not found (pip install tensorboard)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    small_model(&tmp.path().join("init"));
    counting_data(&tmp.path().join("data"), 40);
    // A val split: counting windows as well, so eval lines are written every 4 steps.
    let val = tmp.path().join("val-data");
    counting_data(&val, 8);
    std::fs::rename(val.join("train.bin"), tmp.path().join("data/val.bin")).unwrap();
    std::fs::rename(val.join("train.idx"), tmp.path().join("data/val.idx")).unwrap();
    let mut cfg = config(tmp.path(), 12);
    cfg.checkpoint_every = 6;
    cfg.eval_every = 4;
    let whole = tmp.path().join("whole");
    Trainer::create(&whole, cfg.clone(), &Device::Cpu).unwrap().run(None, &Quiet).unwrap();
    // Stopped at step 8, two steps after the checkpoint at 6: the resume replays steps 7 and 8.
    let split = tmp.path().join("split");
    Trainer::create(&split, cfg.clone(), &Device::Cpu).unwrap().run(Some(8), &Quiet).unwrap();
    let mut resumed = Trainer::resume(&split, &Device::Cpu).unwrap();
    assert_eq!(resumed.state().step, 6);
    resumed.run(None, &Quiet).unwrap();
    assert_eq!(kiln_train::tensorboard::event_files(&split).unwrap().len(), 2);

    let read = |dir: &Path| -> HashMap<String, Vec<(u64, f64)>> {
        let out = std::process::Command::new("python3").args(["-c", READ, dir.to_str().unwrap()]).output().unwrap();
        assert!(out.status.success(), "tensorboard could not read {}: {}", dir.display(), String::from_utf8_lossy(&out.stderr));
        let v: HashMap<String, Vec<(u64, f64)>> = serde_json::from_slice(&out.stdout).unwrap();
        v
    };
    let tb = read(&whole);
    // The expected series, from metrics.jsonl of the uninterrupted run.
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(whole.join("metrics.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let series = |kind: &str, field: &str| -> Vec<(u64, f64)> {
        lines.iter().filter(|m| m["kind"] == kind).map(|m| (m["step"].as_u64().unwrap(), m[field].as_f64().unwrap())).collect()
    };
    for (tag, kind, field) in [
        ("train/loss", "train", "loss"),
        ("train/lr", "train", "lr"),
        ("train/grad_norm", "train", "grad_norm"),
        ("train/tokens_per_s", "train", "tokens_per_s"),
        ("eval/loss", "eval", "loss"),
    ] {
        let want = series(kind, field);
        let got = &tb[tag];
        assert_eq!(got.len(), want.len(), "{tag}: {got:?} vs {want:?}");
        for ((gs, gv), (ws, wv)) in got.iter().zip(&want) {
            assert_eq!(gs, ws, "{tag}");
            // TensorBoard keeps f32 scalars.
            assert!((gv - wv).abs() <= 1e-6 * wv.abs().max(1.0), "{tag} at step {ws}: {gv} vs {wv}");
        }
    }
    assert_eq!(tb["eval/loss"].iter().map(|p| p.0).collect::<Vec<_>>(), [4, 8, 12]);
    // Across the resume: every step once, the same values (timing aside).
    let tb_split = read(&split);
    for tag in ["train/loss", "train/lr", "train/grad_norm", "eval/loss"] {
        assert_eq!(tb_split[tag], tb[tag], "{tag} after a resume");
    }
    // A new run may not write into a directory with another run's event files.
    let stray = tmp.path().join("stray");
    std::fs::create_dir_all(&stray).unwrap();
    std::fs::copy(kiln_train::tensorboard::event_files(&whole).unwrap()[0].clone(), stray.join("events.out.tfevents.1.other")).unwrap();
    let err = Trainer::create(&stray, cfg, &Device::Cpu).err().expect("refused").to_string();
    assert!(err.contains("event files of another run") && err.contains("stray"), "{err}");
}
