//! Prompts: the context files within the budget and the prompt of a task in one condition.

use std::path::PathBuf;

use kiln_infer::prompt::{self, ContextFile};
use kiln_infer::repo::RepoIndex;
use kiln_tokenizer::Tokenizer;
use serde::Serialize;

use super::RepoTask;
use crate::EvalError;

/// Token budgets of a prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Budgets {
    /// The whole prompt (default 2048 − 64: a 2,048-token model with room for cceval's 50
    /// generated tokens).
    pub max_prompt_tokens: usize,
    /// The cross-file part (default 512: cceval's and the paper's budget). The in-file part gets
    /// the rest in both conditions.
    pub context_tokens: usize,
}

impl Default for Budgets {
    fn default() -> Self {
        Self { max_prompt_tokens: 2048 - 64, context_tokens: 512 }
    }
}

/// A prompt for one task in one condition.
#[derive(Debug, Clone)]
pub struct Prompt {
    /// The task.
    pub task_id: String,
    /// With the imported files in front.
    pub with_context: bool,
    /// Token ids for an in-process model (BOS, context, path comment, prefix; FIM markers and the
    /// suffix in FIM mode).
    pub ids: Vec<u32>,
    /// The same as text for a completions endpoint: context files + path comment + prefix.
    pub text: String,
    /// In FIM mode, the (truncated) suffix, to send as the endpoint's `suffix`.
    pub suffix: Option<String>,
    /// Paths of the context files, in prompt order.
    pub context_paths: Vec<String>,
}

/// The files `task`'s file imports, directly or not, in dependency order, within
/// `budget_tokens` (farthest dropped first): [`RepoIndex::context_for`] on the snapshot.
pub fn context_files(
    index: &RepoIndex,
    task: &RepoTask,
    tokenizer: &Tokenizer,
    budget_tokens: usize,
) -> Result<Vec<ContextFile>, EvalError> {
    index
        .context_for(&task.path, budget_tokens, tokenizer)
        .map_err(|e| EvalError::Data { path: PathBuf::from(&task.path), message: format!("task {}: {e}", task.task_id) })
}

/// Like [`context_files`], but the nearest files are kept whole while they fit and the next one
/// is cut to its first lines to fill the rest of `budget_tokens` (its path comment and a few
/// tokens of rendering are counted too).
pub fn context_files_cut(
    index: &RepoIndex,
    task: &RepoTask,
    tokenizer: &Tokenizer,
    budget_tokens: usize,
) -> Result<Vec<ContextFile>, EvalError> {
    let all = context_files(index, task, tokenizer, usize::MAX / 4)?;
    let count = |s: &str| tokenizer.encode_raw(s).map(|ids| ids.len()).unwrap_or(s.len());
    // Dependency order puts the nearest imports last, right before the file itself.
    let mut kept: Vec<ContextFile> = Vec::new();
    let mut left = budget_tokens;
    for f in all.into_iter().rev() {
        let overhead = count(&f.path) + 4;
        if left <= overhead {
            break;
        }
        let need = overhead + count(&f.text);
        if need <= left {
            left -= need;
            kept.push(f);
            continue;
        }
        let mut text = String::new();
        let mut used = overhead;
        for line in f.text.split_inclusive('\n') {
            let n = count(line);
            if used + n > left {
                break;
            }
            used += n;
            text.push_str(line);
        }
        if !text.is_empty() {
            kept.push(ContextFile { path: f.path, text });
        }
        break;
    }
    kept.reverse();
    Ok(kept)
}

/// Builds the prompt of `task` with `context` (empty for the "without" condition), the in-file
/// part left-truncated by whole lines to `max_prompt_tokens - context_tokens`.
pub fn prompt_for(
    task: &RepoTask,
    context: &[ContextFile],
    tokenizer: &Tokenizer,
    budgets: &Budgets,
    fim: bool,
) -> Result<Prompt, EvalError> {
    let tok =
        |e: kiln_infer::InferError| EvalError::Data { path: PathBuf::from(&task.path), message: format!("task {}: {e}", task.task_id) };
    let count = |s: &str| tokenizer.encode_raw(s).map(|v| v.len()).unwrap_or(s.len());
    let in_file = budgets.max_prompt_tokens.saturating_sub(budgets.context_tokens).max(1);
    let head = count(&prompt::repo_prompt_text(&[], Some(&task.path), ""));
    let (prefix_budget, suffix) = if fim {
        let suffix = keep_start(&task.suffix, in_file / 4, &count);
        (in_file.saturating_sub(head + count(suffix) + 3), Some(suffix.to_string()))
    } else {
        (in_file.saturating_sub(head), None)
    };
    let prefix = keep_end(&task.prefix, prefix_budget, &count);
    let ids = match &suffix {
        Some(s) => prompt::repo_fim_ids(tokenizer, context, Some(&task.path), prefix, s).map_err(tok)?.0,
        None => prompt::repo_completion_ids(tokenizer, context, Some(&task.path), prefix).map_err(tok)?.0,
    };
    Ok(Prompt {
        task_id: task.task_id.clone(),
        with_context: !context.is_empty(),
        ids,
        text: prompt::repo_prompt_text(context, Some(&task.path), prefix),
        suffix,
        context_paths: context.iter().map(|f| f.path.clone()).collect(),
    })
}

/// The longest tail of `text` starting at a line start (or, when even the last line is over,
/// at a character) that has at most `budget` tokens.
fn keep_end<'a>(text: &'a str, budget: usize, count: &dyn Fn(&str) -> usize) -> &'a str {
    if count(text) <= budget {
        return text;
    }
    let mut starts: Vec<usize> =
        std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).filter(|&i| i < text.len()).collect();
    // Then every character of the last line, for a line longer than the budget.
    let last = *starts.last().unwrap_or(&0);
    starts.extend(text[last..].char_indices().skip(1).map(|(i, _)| last + i));
    starts.push(text.len());
    // The first start whose tail fits (tails shrink as the start grows).
    let k = starts.partition_point(|&s| count(&text[s..]) > budget);
    &text[starts[k.min(starts.len() - 1)]..]
}

/// The longest head of `text` ending at a line end with at most `budget` tokens.
fn keep_start<'a>(text: &'a str, budget: usize, count: &dyn Fn(&str) -> usize) -> &'a str {
    if count(text) <= budget {
        return text;
    }
    let ends: Vec<usize> = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
    let k = ends.partition_point(|&e| count(&text[..e]) <= budget);
    &text[..ends[k.saturating_sub(1)]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_whole_lines() {
        let count = |s: &str| s.len();
        assert_eq!(keep_end("aa\nbb\ncc\n", 6, &count), "bb\ncc\n");
        assert_eq!(keep_end("aa\nbb\ncc\n", 100, &count), "aa\nbb\ncc\n");
        assert_eq!(keep_end("abcdef", 3, &count), "def");
        assert_eq!(keep_start("aa\nbb\ncc\n", 6, &count), "aa\nbb\n");
        assert_eq!(keep_start("aa\nbb\ncc\n", 1, &count), "");
    }
}
