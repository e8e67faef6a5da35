//! The generic shape of a benchmark, so that one completion / scoring / reporting loop serves
//! them all: a benchmark is a list of [`Task`]s, each with an id, a language, what the model
//! sees ([`Prompt`]), where generation stops, how a raw continuation becomes the scored
//! completion, and how a completion becomes a [`TestProgram`]. HumanEval, its infilling sets
//! MBPP and MultiPL-E are built here; a new benchmark adds a constructor returning the same type.

use std::sync::Arc;

use crate::{humaneval, infilling, mbpp, multipl_e};

/// What the model is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    /// Continue this text.
    Completion(String),
    /// Fill the hole between `prefix` and `suffix`.
    Fim {
        /// Code before the hole.
        prefix: String,
        /// Code after the hole.
        suffix: String,
    },
}

impl Prompt {
    /// The text to record in the samples file (FIM: prefix, a marker, suffix).
    pub fn display(&self) -> String {
        match self {
            Prompt::Completion(p) => p.clone(),
            Prompt::Fim { prefix, suffix } => format!("{prefix}<FILL>{suffix}"),
        }
    }
}

/// A program that decides whether a completion passes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestProgram {
    /// Python source, run by the guard driver (`sandbox::run_python`); passes when it raises nothing.
    Python(String),
    /// Files written into a fresh directory, then `argv` run there; passes on exit status 0.
    /// Programs are always files: completion text never becomes an argv string.
    Command {
        /// (file name, contents).
        files: Vec<(String, String)>,
        /// The command line (no completion text in it).
        argv: Vec<String>,
    },
    /// A MultiPL-E program: compiled (where the language has a compile step) and run with its
    /// language's commands and pass rule ([`multipl_e::run_one`]).
    Compiled {
        /// The language's commands.
        toolchain: Arc<multipl_e::Toolchain>,
        /// The whole source file.
        source: String,
    },
}

/// Builds the test program for a completion.
pub type ProgramFn = Arc<dyn Fn(&str) -> TestProgram + Send + Sync>;
/// Turns a raw continuation into the scored completion.
pub type FinishFn = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// One problem of a benchmark.
#[derive(Clone)]
pub struct Task {
    /// Unique within the benchmark (`HumanEval/0`, `mbpp/11`, ...).
    pub task_id: String,
    /// The row of the per-language breakdown (`python`, `cpp`, ...).
    pub language: String,
    /// What the model sees.
    pub prompt: Prompt,
    /// Strings that end generation (also cut again by `finish`).
    pub stop: Vec<String>,
    /// The reference completion (what `--canonical` scores).
    pub canonical: String,
    /// When set, the completion is also scored by exact match against this (both stripped).
    pub exact_reference: Option<String>,
    /// Raw continuation → scored completion.
    pub finish: FinishFn,
    /// Completion → test program.
    pub program: ProgramFn,
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task")
            .field("task_id", &self.task_id)
            .field("language", &self.language)
            .field("prompt", &self.prompt)
            .finish_non_exhaustive()
    }
}

impl Task {
    /// Whether `completion` equals the exact-match reference (stripped), if this task has one.
    pub fn exact_match(&self, completion: &str) -> Option<bool> {
        self.exact_reference.as_ref().map(|r| r.trim() == completion.trim())
    }
}

/// HumanEval tasks with DeepSeek's protocol.
pub fn humaneval_tasks(problems: &[humaneval::Problem]) -> Vec<Task> {
    problems
        .iter()
        .map(|p| {
            let q = Arc::new(p.clone());
            Task {
                task_id: p.task_id.clone(),
                language: "python".into(),
                prompt: Prompt::Completion(humaneval::model_input(p).to_string()),
                stop: humaneval::STOP.iter().map(|s| s.to_string()).collect(),
                canonical: humaneval::canonical_completion(p),
                exact_reference: None,
                finish: Arc::new(|t| humaneval::truncate(t).to_string()),
                program: Arc::new(move |c| TestProgram::Python(humaneval::program(&q, c))),
            }
        })
        .collect()
}

/// MultiPL-E tasks of one language, with DeepSeek's protocol: the prompt stripped, the data's
/// stop tokens (TypeScript: and DeepSeek's extras), prompt + completion + tests compiled and run
/// with `toolchain`. There are no reference solutions (`canonical` is empty).
pub fn multipl_e_tasks(problems: &[multipl_e::Problem], lang: multipl_e::Language, toolchain: Arc<multipl_e::Toolchain>) -> Vec<Task> {
    problems
        .iter()
        .map(|p| {
            let q = Arc::new(p.clone());
            let stop = multipl_e::stop_tokens(p, lang);
            let cut = stop.clone();
            let toolchain = toolchain.clone();
            Task {
                task_id: p.name.clone(),
                language: lang.name().into(),
                prompt: Prompt::Completion(multipl_e::model_input(p).to_string()),
                stop,
                canonical: String::new(),
                exact_reference: None,
                finish: Arc::new(move |t| multipl_e::truncate(t, &cut).to_string()),
                program: Arc::new(move |c| TestProgram::Compiled { toolchain: toolchain.clone(), source: multipl_e::program(&q, lang, c) }),
            }
        })
        .collect()
}

/// Which HumanEval infilling set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InfillSet {
    /// One removed line (1,033 tasks).
    Single,
    /// Several whole lines removed (5,815 tasks).
    Multi,
    /// A random character span removed (1,640 tasks).
    RandomSpan,
    /// The 164-task subset of random-span.
    RandomSpanLight,
}

impl InfillSet {
    /// The set's file in `humaneval-infilling/`.
    pub fn file_name(self) -> &'static str {
        match self {
            InfillSet::Single => "HumanEval-SingleLineInfilling.jsonl.gz",
            InfillSet::Multi => "HumanEval-MultiLineInfilling.jsonl.gz",
            InfillSet::RandomSpan => "HumanEval-RandomSpanInfilling.jsonl.gz",
            InfillSet::RandomSpanLight => "HumanEval-RandomSpanInfillingLight.jsonl.gz",
        }
    }

    /// The set's file as built into kiln.
    pub fn bundled(self) -> kiln_benchdata::BundledFile {
        match self {
            InfillSet::Single => kiln_benchdata::INFILLING_SINGLE_LINE,
            InfillSet::Multi => kiln_benchdata::INFILLING_MULTI_LINE,
            InfillSet::RandomSpan => kiln_benchdata::INFILLING_RANDOM_SPAN,
            InfillSet::RandomSpanLight => kiln_benchdata::INFILLING_RANDOM_SPAN_LIGHT,
        }
    }
}

/// A generated middle for single-line infilling: up to and including its first newline (the
/// task removed one line; what follows is code the suffix already has).
pub fn one_line(middle: &str) -> String {
    match middle.find('\n') {
        Some(i) => middle[..=i].to_string(),
        None => middle.to_string(),
    }
}

/// HumanEval infilling tasks. Single-line middles are cut after their first newline; multi-line
/// and random-span middles are kept whole, as the reference harness (human-eval-infilling)
/// executes `prompt + completion + suffix` with the completion untouched (the model ends the
/// middle with EOS).
pub fn infilling_tasks(problems: &[infilling::Problem], set: InfillSet) -> Vec<Task> {
    problems
        .iter()
        .map(|p| {
            let q = Arc::new(p.clone());
            let finish: FinishFn = if set == InfillSet::Single { Arc::new(one_line) } else { Arc::new(|t: &str| t.to_string()) };
            Task {
                task_id: p.task_id.clone(),
                language: "python".into(),
                prompt: Prompt::Fim { prefix: p.prompt.clone(), suffix: p.suffix.clone() },
                stop: Vec::new(),
                canonical: p.canonical_solution.clone(),
                exact_reference: Some(p.canonical_solution.clone()),
                finish,
                program: Arc::new(move |c| TestProgram::Python(infilling::program(&q, c))),
            }
        })
        .collect()
}

/// MBPP test tasks with DeepSeek's 3-shot protocol.
pub fn mbpp_tasks(m: &mbpp::Mbpp) -> Vec<Task> {
    m.test
        .iter()
        .map(|r| {
            let q = Arc::new(r.clone());
            Task {
                task_id: format!("mbpp/{}", r.task_id),
                language: "python".into(),
                prompt: Prompt::Completion(mbpp::prompt(m, r)),
                stop: vec![mbpp::STOP.to_string()],
                canonical: mbpp::canonical(r),
                exact_reference: None,
                finish: Arc::new(mbpp::extract),
                program: Arc::new(move |c| TestProgram::Python(mbpp::program(&q, c))),
            }
        })
        .collect()
}
