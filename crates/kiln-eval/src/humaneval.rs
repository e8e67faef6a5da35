//! HumanEval (164 Python problems) with DeepSeek-Coder's protocol: the prompt stripped of its
//! trailing whitespace, greedy decoding, the completion cut at the first of
//! `\ndef`, `\nclass`, `\nif`, `\n#`, `\nprint`, then a test program of DeepSeek's import
//! prelude + prompt + completion + the tests + `check(entry_point)`, run with a 10 s limit.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::EvalError;

/// One problem.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Problem {
    /// `HumanEval/0` ...
    pub task_id: String,
    /// The signature and docstring the model continues.
    pub prompt: String,
    /// The function under test.
    pub entry_point: String,
    /// A reference body.
    pub canonical_solution: String,
    /// `def check(candidate): ...`.
    pub test: String,
}

/// DeepSeek-Coder's import prelude for Python test programs (numpy must be installed).
pub const PRELUDE: &str = "import math\nimport re\nimport sys\nimport copy\nimport datetime\nimport itertools\nimport collections\nimport heapq\nimport functools\nimport hashlib\nimport numpy\nimport numpy as np\nimport string\nfrom typing import *\nfrom collections import *\n";

/// Where generation stops (DeepSeek's Python list).
pub const STOP: [&str; 5] = ["\ndef", "\nclass", "\nif", "\n#", "\nprint"];

/// Reads `HumanEval.jsonl.gz` (or plain `.jsonl`); every line must hold every field.
pub fn load(path: &Path) -> Result<Vec<Problem>, EvalError> {
    load_data(&crate::DataFile::Path(path.to_path_buf()))
}

/// [`load`] of a file on disk or the bundled copy ([`kiln_benchdata::HUMANEVAL`]).
pub fn load_data(data: &crate::DataFile) -> Result<Vec<Problem>, EvalError> {
    crate::load_data_jsonl(data, "task_id, prompt, entry_point, canonical_solution, test")
}

/// The model's input for `p`: the prompt without trailing whitespace.
pub fn model_input(p: &Problem) -> &str {
    p.prompt.trim_end()
}

/// Cuts a raw continuation at the first stop sequence.
pub fn truncate(completion: &str) -> &str {
    let cut = STOP.iter().filter_map(|s| completion.find(s)).min().unwrap_or(completion.len());
    &completion[..cut]
}

/// The test program for a completion of [`model_input`] (what follows the stripped prompt).
pub fn program(p: &Problem, completion: &str) -> String {
    format!("{PRELUDE}{}{}\n{}\ncheck({})\n", model_input(p), completion, p.test, p.entry_point)
}

/// The canonical solution as a completion of [`model_input`].
pub fn canonical_completion(p: &Problem) -> String {
    format!("{}{}", &p.prompt[model_input(p).len()..], p.canonical_solution)
}
