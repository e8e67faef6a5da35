//! Rendering files as the model reads them: each file preceded by a comment giving its path.
//!
//! The corpus (training samples) and inference (repository context in prompts) must produce the
//! same bytes for the same files, so the format is defined here, once:
//!
//! ```text
//! <header of file 1>\n
//! <text of file 1, ending in \n>
//! \n
//! <header of file 2>\n
//! <text of file 2, ending in \n>
//! ```
//!
//! * The header is the path in the language's comment syntax, one space after the opener:
//!   `# src/a.py`, `// src/a.c`, `<!-- README.md -->` (a block comment gets a space before its
//!   closer too). A file of unknown language gets `# path`. See [`file_header`].
//! * The text follows on the next line unchanged, with a `\n` appended if it does not end in one;
//!   an empty file contributes its header line only.
//! * Files are separated by exactly one blank line (the `\n` that ends a file, then one more).
//! * The sample therefore ends with exactly one `\n` (unless it has no files: then it is empty).
//!
//! The paper's README writes `#utils.py` then `# model.py` (inconsistent spacing); kiln always
//! puts the space, and uses the language's own comment syntax rather than `#` everywhere, so the
//! header is valid code in the file's language.

use crate::lang::Comment;
use crate::{Repo, SourceFile};

/// The path header of `file`: its path as a comment in its language (`# src/a.py`,
/// `// src/a.c`, `<!-- README.md -->`; `# path` when the language is unknown). No newline.
pub fn file_header(file: &SourceFile) -> String {
    match file.language.map(|l| l.comment()) {
        Some(Comment::Line(open)) => format!("{open} {}", file.path),
        Some(Comment::Block(open, close)) => format!("{open} {} {close}", file.path),
        None => format!("# {}", file.path),
    }
}

/// Appends one file (header, newline, text ending in a newline) to `out`.
fn push_file(out: &mut String, file: &SourceFile) {
    out.push_str(&file_header(file));
    out.push('\n');
    out.push_str(&file.text);
    if !file.text.is_empty() && !file.text.ends_with('\n') {
        out.push('\n');
    }
}

/// Renders `files` in the given order in the format of the module docs (what a prompt's
/// repository context is made of: the same bytes as a training sample).
pub fn render_files<'a>(files: impl IntoIterator<Item = &'a SourceFile>) -> String {
    let mut out = String::new();
    for (k, f) in files.into_iter().enumerate() {
        if k > 0 {
            out.push('\n');
        }
        push_file(&mut out, f);
    }
    out
}

/// Renders `files` (indices into `repo.files`, in the given order) in the format of the module
/// docs: header line, text, one blank line between files.
pub fn render_sample(repo: &Repo, files: &[usize]) -> String {
    let mut out = String::with_capacity(files.iter().map(|&i| repo.files[i].text.len() + repo.files[i].path.len() + 8).sum());
    for (k, &i) in files.iter().enumerate() {
        if k > 0 {
            out.push('\n');
        }
        push_file(&mut out, &repo.files[i]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, text: &str) -> SourceFile {
        SourceFile::new(path, text)
    }

    #[test]
    fn headers_follow_comment_syntax() {
        assert_eq!(file_header(&file("src/a.py", "")), "# src/a.py");
        assert_eq!(file_header(&file("src/a.c", "")), "// src/a.c");
        assert_eq!(file_header(&file("README.md", "")), "<!-- README.md -->");
        assert_eq!(file_header(&file("data/blob.unknownext", "")), "# data/blob.unknownext");
    }

    #[test]
    fn sample_format_is_exact() {
        let repo = Repo { name: "r".into(), files: vec![file("a.py", "import b\n"), file("b.py", "x = 1"), file("c.py", "")] };
        assert_eq!(render_sample(&repo, &[1, 0, 2]), "# b.py\nx = 1\n\n# a.py\nimport b\n\n# c.py\n");
        assert_eq!(render_sample(&repo, &[]), "");
    }
}
