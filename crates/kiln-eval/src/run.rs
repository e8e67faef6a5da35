//! Scoring many programs with N parallel workers.

use rayon::prelude::*;
use serde::Serialize;

use crate::humaneval::{self, Problem};
use crate::sandbox::{self, Isolation, Limits, RunResult};
use crate::EvalError;

/// One scored sample.
#[derive(Debug, Clone, Serialize)]
pub struct Scored {
    /// The problem.
    pub task_id: String,
    /// The completion that was tested.
    pub completion: String,
    /// How the test program ended.
    pub result: RunResult,
}

/// Runs the HumanEval test program of each (problem, completion) with `workers` in parallel.
pub fn score_humaneval(samples: &[(&Problem, String)], workers: usize, limits: &Limits, isolation: Isolation) -> Result<Vec<Scored>, EvalError> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(workers.max(1)).build().map_err(|e| EvalError::Exec(std::io::Error::other(e)))?;
    pool.install(|| {
        samples
            .par_iter()
            .map(|(p, completion)| {
                let result = sandbox::run_python(&humaneval::program(p, completion), limits, isolation)?;
                Ok(Scored { task_id: p.task_id.clone(), completion: completion.clone(), result })
            })
            .collect()
    })
}
