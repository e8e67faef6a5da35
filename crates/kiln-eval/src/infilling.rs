//! HumanEval single-line infilling (InCoder/OpenAI, 1,033 tasks): the model fills one line
//! between a prefix (`prompt`) and a `suffix`. Scored by execution, as the reference harness:
//! program = prompt + middle + suffix + tests + `check(entry_point)`, 3 s per program; and by
//! exact match of the stripped line.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::EvalError;

/// One infilling task.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Problem {
    /// `SingleLineInfilling/HumanEval/0/L0` ...
    pub task_id: String,
    /// The function under test.
    pub entry_point: String,
    /// Code before the hole.
    pub prompt: String,
    /// Code after the hole.
    pub suffix: String,
    /// The line that was removed.
    pub canonical_solution: String,
    /// `def check(candidate): ...`.
    pub test: String,
}

/// Reads `HumanEval-SingleLineInfilling.jsonl.gz` (or any file of the same fields).
pub fn load(path: &Path) -> Result<Vec<Problem>, EvalError> {
    load_data(&crate::DataFile::Path(path.to_path_buf()))
}

/// [`load`] of a file on disk or a bundled set ([`crate::task::InfillSet::bundled`]).
pub fn load_data(data: &crate::DataFile) -> Result<Vec<Problem>, EvalError> {
    crate::load_data_jsonl(data, "task_id, entry_point, prompt, suffix, canonical_solution, test")
}

/// The test program for a generated middle.
pub fn program(p: &Problem, middle: &str) -> String {
    format!("{}{}{}\n{}\ncheck({})\n", p.prompt, middle, p.suffix, p.test, p.entry_point)
}

/// Whether the middle is the removed line, both stripped (the SantaCoder-FIM convention).
pub fn exact_match(p: &Problem, middle: &str) -> bool {
    middle.trim() == p.canonical_solution.trim()
}
