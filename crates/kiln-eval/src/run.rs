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
pub fn score_humaneval(
    samples: &[(&Problem, String)],
    workers: usize,
    limits: &Limits,
    isolation: Isolation,
) -> Result<Vec<Scored>, EvalError> {
    let programs: Vec<_> = samples.iter().map(|(p, c)| (p.task_id.clone(), c.clone(), humaneval::program(p, c))).collect();
    score_programs(&programs, workers, limits, isolation)
}

/// Runs each (task id, completion, Python test program) with `workers` in parallel.
pub fn score_programs(
    programs: &[(String, String, String)],
    workers: usize,
    limits: &Limits,
    isolation: Isolation,
) -> Result<Vec<Scored>, EvalError> {
    let pool =
        rayon::ThreadPoolBuilder::new().num_threads(workers.max(1)).build().map_err(|e| EvalError::Exec(std::io::Error::other(e)))?;
    pool.install(|| {
        programs
            .par_iter()
            .map(|(task_id, completion, program)| {
                let result = sandbox::run_python(program, limits, isolation)?;
                Ok(Scored { task_id: task_id.clone(), completion: completion.clone(), result })
            })
            .collect()
    })
}
