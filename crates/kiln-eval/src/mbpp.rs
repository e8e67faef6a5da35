//! MBPP with DeepSeek-Coder's 3-shot protocol (`Evaluation/MBPP/mbpp.py`): the 500 test
//! problems (task ids 11–510 of `mbpp.jsonl`), each prompted with three solved exemplars (task
//! ids 2, 3, 4) in a fixed "You are an expert Python programmer ..." wording, greedy, at most
//! 500 new tokens, generation stopped once "[DONE]" appears; the answer is the text before
//! "[DONE]", stripped. Test program = the Python import prelude + answer + "\n" + the three
//! asserts of `test_list`, 10 s.
//!
//! Why the reference code scores 499/500, not 500: the protocol never runs `test_setup_code` (nor
//! `challenge_test_list`). Task 367 (`is_tree_balanced`) is the only test problem whose asserts
//! use objects (`root`, `root1`, `root2`) built in `test_setup_code`, so its test program fails
//! with a `NameError` whatever the code; it is unsolvable under this protocol, and kiln keeps it
//! that way so that scores compare with the paper's.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::EvalError;

/// One row of `mbpp.jsonl` (the original google-research schema).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Row {
    /// 1–974; 11–510 are the test split.
    pub task_id: u32,
    /// The task in English.
    pub text: String,
    /// A reference solution (`\r\n` line ends, sometimes tabs).
    pub code: String,
    /// Three `assert` lines.
    pub test_list: Vec<String>,
    /// Setup code (unused by the protocol; see the module doc).
    #[serde(default)]
    pub test_setup_code: String,
}

/// The few-shot exemplars' task ids.
pub const EXEMPLARS: [u32; 3] = [2, 3, 4];

/// Where generation stops.
pub const STOP: &str = "[DONE]";

/// The loaded benchmark: exemplars and the 500 test problems.
#[derive(Debug, Clone)]
pub struct Mbpp {
    /// Rows 2, 3, 4.
    pub exemplars: Vec<Row>,
    /// Task ids 11–510, in order.
    pub test: Vec<Row>,
}

/// Reads `mbpp.jsonl`; every line must hold task_id, text, code and test_list, and the file must
/// contain the exemplars and all 500 test problems (a truncated download is named, not scored).
pub fn load(path: &Path) -> Result<Mbpp, EvalError> {
    load_data(&crate::DataFile::Path(path.to_path_buf()))
}

/// [`load`] of a file on disk or the bundled copy ([`kiln_benchdata::MBPP`]).
pub fn load_data(data: &crate::DataFile) -> Result<Mbpp, EvalError> {
    let rows: Vec<Row> = crate::load_data_jsonl(data, "task_id, text, code, test_list")?;
    let bad = |m: String| EvalError::Data { path: data.label(), message: m };
    let exemplars = EXEMPLARS
        .iter()
        .map(|id| {
            rows.iter()
                .find(|r| r.task_id == *id)
                .cloned()
                .ok_or_else(|| bad(format!("no row with task_id {id} (a few-shot exemplar); use the full 974-row mbpp.jsonl")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let test: Vec<Row> = rows.iter().filter(|r| (11..=510).contains(&r.task_id)).cloned().collect();
    if test.len() != 500 {
        return Err(bad(format!(
            "{} rows with task_id 11..=510, expected 500 (the test split); use the full 974-row mbpp.jsonl",
            test.len()
        )));
    }
    Ok(Mbpp { exemplars, test })
}

fn block(r: &Row) -> String {
    format!(
        "You are an expert Python programmer, and here is your task: {} Your code should pass these tests:\n\n{}\n",
        r.text,
        r.test_list.join("\n")
    )
}

/// The 3-shot prompt for `target`.
pub fn prompt(m: &Mbpp, target: &Row) -> String {
    let mut s = String::new();
    for e in &m.exemplars {
        s.push_str(&block(e));
        s.push_str(&format!("[BEGIN]\n{}\n[DONE]\n", e.code.replace('\r', "").replace('\t', "    ")));
    }
    s.push_str(&block(target));
    s.push_str("[BEGIN]");
    s
}

/// The answer in a raw continuation: the text before "[DONE]", stripped.
pub fn extract(continuation: &str) -> String {
    continuation.split(STOP).next().unwrap_or("").trim().to_string()
}

/// The test program for an answer.
pub fn program(r: &Row, answer: &str) -> String {
    format!("{}{answer}\n{}\n", crate::humaneval::PRELUDE, r.test_list.join("\n"))
}

/// The reference code as an answer (carriage returns dropped, tabs kept).
pub fn canonical(r: &Row) -> String {
    r.code.replace('\r', "")
}
