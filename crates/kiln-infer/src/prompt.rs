//! Prompt builders: plain completion, DeepSeek-Coder's PSM fill-in-the-middle layout, and the
//! same with repository context in front.
//! The strings themselves live in [`kiln_tokenizer::special`]; this module turns them into ids.

use kiln_tokenizer::{special, Tokenizer};

use crate::{InferError, Result};

/// Ids for a plain completion prompt (BOS first when the tokenizer adds it).
pub fn completion_ids(tokenizer: &Tokenizer, text: &str) -> Result<Vec<u32>> {
    Ok(tokenizer.encode(text)?)
}

/// Ids for an infilling prompt: `BOS <｜fim▁begin｜>prefix<｜fim▁hole｜>suffix<｜fim▁end｜>`.
/// The markers are placed as ids, so this works even if the tokenizer's added-token table spells
/// them differently from the text; with DeepSeek's vocabulary it equals tokenizing the string
/// [`special::fim_prompt`] builds (the added tokens split the text at the same places).
pub fn fim_ids(tokenizer: &Tokenizer, prefix: &str, suffix: &str) -> Result<Vec<u32>> {
    // The repository layout with no context files is exactly this one.
    Ok(repo_fim_ids(tokenizer, &[], None, prefix, suffix)?.0)
}

/// A file given as context for a completion: a path (relative to the repository root) and its
/// text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextFile {
    /// Path relative to the repository root (it becomes the file's header comment).
    pub path: String,
    /// The file's text.
    pub text: String,
}

/// Ids for an infilling prompt with repository context, laid out as kiln's training samples
/// are (a repository's files in dependency order, each under its path comment, FIM applied to
/// the whole sample): `BOS <｜fim▁begin｜>` + the context files rendered by
/// [`kiln_repo::render::render_files`] + a blank line + (the current file's path comment when
/// `current_path` is given) + prefix `<｜fim▁hole｜>` suffix `<｜fim▁end｜>`.
///
/// The context comes first and is tokenized on its own (it ends in a newline, where DeepSeek's
/// pre-tokenizer always splits), so a request that changes only the text near the cursor shares
/// the whole context as a token prefix with the previous one: what a prefix cache reuses.
/// Returns the ids and how many of them (from the start) belong to the context.
pub fn repo_fim_ids(
    tokenizer: &Tokenizer,
    context: &[ContextFile],
    current_path: Option<&str>,
    prefix: &str,
    suffix: &str,
) -> Result<(Vec<u32>, usize)> {
    let s = tokenizer.special();
    let begin = s.fim_begin.ok_or(InferError::MissingSpecialToken(special::FIM_BEGIN))?;
    let hole = s.fim_hole.ok_or(InferError::MissingSpecialToken(special::FIM_HOLE))?;
    let end = s.fim_end.ok_or(InferError::MissingSpecialToken(special::FIM_END))?;
    let mut ids = Vec::new();
    if tokenizer.adds_bos() {
        ids.extend(s.bos);
    }
    ids.push(begin);
    ids.extend(context_ids(tokenizer, context)?);
    let context_len = ids.len();
    ids.extend(tokenizer.encode_raw(&(file_head(current_path) + prefix))?);
    ids.push(hole);
    ids.extend(tokenizer.encode_raw(suffix)?);
    ids.push(end);
    Ok((ids, context_len))
}

/// Ids for a left-to-right completion with repository context: BOS + the context files (as in
/// [`repo_fim_ids`]) + the current file's path comment (when given) + `prompt`. Returns the ids
/// and the length of the context part.
pub fn repo_completion_ids(
    tokenizer: &Tokenizer,
    context: &[ContextFile],
    current_path: Option<&str>,
    prompt: &str,
) -> Result<(Vec<u32>, usize)> {
    let mut ids = Vec::new();
    if tokenizer.adds_bos() {
        ids.extend(tokenizer.special().bos);
    }
    ids.extend(context_ids(tokenizer, context)?);
    let context_len = ids.len();
    ids.extend(tokenizer.encode_raw(&(file_head(current_path) + prompt))?);
    Ok((ids, context_len))
}

/// The text [`repo_completion_ids`] tokenizes (after BOS): the context files rendered as a
/// repository sample, a blank line, the current file's path comment (when given) and `prompt`.
/// What a text-only completions endpoint is sent, so it sees the same layout as an in-process
/// model.
pub fn repo_prompt_text(context: &[ContextFile], current_path: Option<&str>, prompt: &str) -> String {
    let files: Vec<kiln_repo::SourceFile> = context.iter().map(|f| kiln_repo::SourceFile::new(f.path.clone(), f.text.clone())).collect();
    let mut text = kiln_repo::render::render_files(&files);
    if !text.is_empty() {
        text.push('\n');
    }
    text + &file_head(current_path) + prompt
}

/// The context files rendered as a repository sample, then the blank line that separates them
/// from the current file; tokenized alone (it ends in a newline, where DeepSeek's pre-tokenizer
/// always splits, so the ids equal those of the whole prompt's text).
fn context_ids(tokenizer: &Tokenizer, context: &[ContextFile]) -> Result<Vec<u32>> {
    let files: Vec<kiln_repo::SourceFile> = context.iter().map(|f| kiln_repo::SourceFile::new(f.path.clone(), f.text.clone())).collect();
    let mut rendered = kiln_repo::render::render_files(&files);
    if !rendered.is_empty() {
        rendered.push('\n');
    }
    Ok(tokenizer.encode_raw(&rendered)?)
}

/// The current file's path comment and newline (empty without a path).
fn file_head(current_path: Option<&str>) -> String {
    match current_path {
        Some(path) => kiln_repo::render::file_header(&kiln_repo::SourceFile::new(path, "")) + "\n",
        None => String::new(),
    }
}

/// Optional stop words of a language for infilling (Tabby's rule, opt-in in kiln): a blank line
/// (`\n\n`), and a newline followed by a keyword that starts a new top-level item, since the
/// middle of a hole rarely spans past the end of its block. `language` is a name from kiln-repo's
/// table (`Python`, `Rust`, ...) or a file path to detect it from; `None` when unknown.
pub fn language_stops(language: &str) -> Option<Vec<String>> {
    let lang = kiln_repo::lang::Language::by_name(language).or_else(|| kiln_repo::lang::detect(language))?;
    let keywords: &[&str] = match lang.name() {
        "Python" => &["def ", "class ", "import ", "from ", "if __name__", "@"],
        "Rust" => &["fn ", "pub ", "impl ", "use ", "struct ", "enum ", "mod ", "trait ", "#["],
        "JavaScript" | "TypeScript" => &["function ", "class ", "import ", "export ", "const ", "let ", "var "],
        "Go" => &["func ", "type ", "import ", "package ", "var ", "const "],
        "Java" | "C#" => &["public ", "private ", "protected ", "class ", "import ", "using ", "namespace "],
        "C" | "C++" => &["#include", "#define", "int ", "void ", "static ", "struct ", "typedef ", "namespace ", "template"],
        _ => &[],
    };
    let mut stops = vec!["\n\n".to_string()];
    stops.extend(keywords.iter().map(|k| format!("\n{k}")));
    Some(stops)
}

#[cfg(test)]
mod tests {
    use super::language_stops;

    #[test]
    fn language_stops_by_name_or_path() {
        let py = language_stops("src/app.py").unwrap();
        assert!(py.contains(&"\n\n".to_string()) && py.contains(&"\ndef ".to_string()));
        assert_eq!(language_stops("Python"), Some(py));
        assert!(language_stops("lib.rs").unwrap().contains(&"\nfn ".to_string()));
        assert_eq!(language_stops("Markdown").map(|v| v.len()), Some(1), "a blank line only");
        assert_eq!(language_stops("no-such-language"), None);
    }
}
