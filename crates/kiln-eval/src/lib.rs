//! kiln-eval: evaluation. Planned (issue #8): HumanEval, MBPP, MultiPL-E, infilling and
//! repository-level completion; sandboxed execution, pass@k, reports. Nothing is implemented yet.
#![deny(missing_docs)]
