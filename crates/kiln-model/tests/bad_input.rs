//! Every damaged or mismatched model directory fails with an error that names the file, field or
//! tensor, never a panic or a silently wrong network. Each case copies a committed fixture into a
//! temporary directory and breaks one thing.

#[path = "../../../tests/support/fixtures.rs"]
mod fixtures;
use fixtures::*;

use std::path::Path;

use candle_core::Device;
use kiln_model::{Llama, ModelError};
use serde_json::Value;

fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) {
    let path = dir.join("config.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(v.as_object_mut().unwrap());
    std::fs::write(path, v.to_string()).unwrap();
}

fn load_err(dir: &Path) -> ModelError {
    Llama::load(dir, None, &Device::Cpu).expect_err("loading must fail")
}

#[test]
fn missing_model_dir_config_and_weights() {
    let err = load_err(Path::new("/nonexistent/model"));
    assert!(err.to_string().contains("/nonexistent/model/config.json"), "{err}");

    let dir = copy_of("tiny-llama");
    std::fs::remove_file(dir.path().join("config.json")).unwrap();
    let err = load_err(dir.path());
    assert!(matches!(err, ModelError::MissingFile { .. }) && err.to_string().contains("config.json"), "{err}");

    let dir = copy_of("tiny-llama");
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    let err = load_err(dir.path());
    assert!(err.to_string().contains("model.safetensors") && err.to_string().contains("not found"), "{err}");
}

#[test]
fn missing_shard_and_bad_index() {
    let dir = copy_of("tiny-llama-sharded-bf16");
    std::fs::remove_file(dir.path().join("model-00002-of-00002.safetensors")).unwrap();
    let err = load_err(dir.path());
    assert!(matches!(err, ModelError::BadIndex { .. }) && err.to_string().contains("model-00002-of-00002.safetensors"), "{err}");

    let dir = copy_of("tiny-llama-sharded-bf16");
    std::fs::write(dir.path().join("model.safetensors.index.json"), "{\"metadata\": {}}").unwrap();
    let err = load_err(dir.path());
    assert!(err.to_string().contains("weight_map"), "{err}");
}

#[test]
fn truncated_safetensors_names_the_file() {
    let dir = copy_of("tiny-llama");
    let path = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_err(dir.path());
    assert!(matches!(err, ModelError::BadSafetensors { .. }), "{err}");
    assert!(err.to_string().contains("model.safetensors"), "{err}");

    // A truncated header, too.
    std::fs::write(&path, &bytes[..5]).unwrap();
    let err = load_err(dir.path());
    assert!(matches!(err, ModelError::BadSafetensors { .. }), "{err}");
}

#[test]
fn wrong_shape_names_the_tensor_and_both_shapes() {
    // Claim a wider MLP than the weights have.
    let dir = copy_of("tiny-llama");
    edit_config(dir.path(), |c| {
        c.insert("intermediate_size".into(), 200.into());
    });
    match load_err(dir.path()) {
        ModelError::TensorShape { name, expected, found, file } => {
            assert!(name.contains("mlp."), "{name}");
            assert!(expected.contains(&200) && found.contains(&176), "{expected:?} vs {found:?}");
            assert!(file.ends_with("model.safetensors"));
        }
        other => panic!("expected a shape error, got {other}"),
    }
}

#[test]
fn missing_tensor_is_named() {
    // One more layer than the checkpoint holds.
    let dir = copy_of("tiny-llama");
    edit_config(dir.path(), |c| {
        c.insert("num_hidden_layers".into(), 3.into());
    });
    let err = load_err(dir.path());
    assert!(matches!(err, ModelError::MissingTensors { count: 9, .. }), "{err}");
    assert!(err.to_string().contains("model.layers.2."), "{err}");
}

#[test]
fn unknown_rope_scaling_type_is_rejected() {
    let dir = copy_of("tiny-llama");
    edit_config(dir.path(), |c| {
        c.insert("rope_scaling".into(), serde_json::json!({"type": "dynamic", "factor": 2.0}));
    });
    let err = load_err(dir.path()).to_string();
    assert!(err.contains("config.json") && err.contains("rope_scaling") && err.contains("dynamic"), "{err}");
}

#[test]
fn invalid_json_config_names_the_file() {
    let dir = copy_of("tiny-llama");
    std::fs::write(dir.path().join("config.json"), "{\"hidden_size\": 64,").unwrap();
    let err = load_err(dir.path());
    assert!(matches!(err, ModelError::ConfigParse { .. }) && err.to_string().contains("config.json"), "{err}");
}
