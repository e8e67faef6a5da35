//! Quality screen: the syntax check that stands in for the paper's "compiler" step (paper §2.4,
//! spec §2.6). The paper's quality model and thresholds are not published.
//!
//! In: a [`SourceFile`]. Out: `Err(DropReason::SyntaxErrors)` when the file's language has a
//! tree-sitter grammar (the nine of [`kiln_repo::lang::ImportSyntax`]) and the share of its bytes
//! that the parser could not place ([`kiln_repo::imports::parse_error_share`]) is above
//! [`QualityConfig::max_error_share`]. Files of other languages always pass.
//!
//! Default threshold 0.10, and why: `root.has_error()` (any error at all) is too strict for a
//! grammar-based check, because tree-sitter grammars lag the languages (new syntax) and cannot see
//! through C/C++ macros, so clean, compiling files often contain a few small ERROR nodes. Files
//! that are not the language they claim (templates with a `.py` name, prose, truncated or merged
//! files) have most of their bytes in errors. A 10 % share of bytes keeps the first group and drops
//! the second; it is a configuration value, to be tuned against the drop counts on a real corpus.

use kiln_repo::imports::{file_syntax, parse_error_share};
use kiln_repo::SourceFile;
use serde::{Deserialize, Serialize};

use crate::filters::DropReason;

/// Settings of the quality screen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualityConfig {
    /// Drop a file when more than this share of its bytes is in tree-sitter error nodes.
    pub max_error_share: f64,
}

impl Default for QualityConfig {
    fn default() -> Self {
        QualityConfig { max_error_share: 0.10 }
    }
}

/// The file's error share, if its language has a grammar.
pub fn error_share(file: &SourceFile) -> Option<f64> {
    parse_error_share(file_syntax(file)?, &file.text)
}

/// Keeps files without a grammar, and files whose error share is at most the threshold.
pub fn check_quality(file: &SourceFile, cfg: &QualityConfig) -> Result<(), DropReason> {
    check_error_share(error_share(file), cfg)
}

/// The screen's verdict for an error share already measured (e.g. from
/// [`kiln_repo::imports::FileFacts::error_share`]); `None` (no grammar, or facts from the
/// parse-free `kiln_repo::scan::scan`, which measure no error share) always passes.
pub fn check_error_share(share: Option<f64>, cfg: &QualityConfig) -> Result<(), DropReason> {
    match share {
        Some(share) if share > cfg.max_error_share => Err(DropReason::SyntaxErrors),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, text: &str) -> SourceFile {
        SourceFile::new(path, text)
    }

    #[test]
    fn clean_code_passes_and_prose_named_py_is_dropped() {
        let cfg = QualityConfig::default();
        assert_eq!(check_quality(&file("a.py", "import os\n\ndef f(x):\n    return os.path.join(x, 'a')\n"), &cfg), Ok(()));
        assert_eq!(check_quality(&file("a.go", "package main\n\nfunc main() {}\n"), &cfg), Ok(()));
        let prose = "Dear reader, this file {{ is }} a Jinja template: {% for x in y %} <b>{{ x }}</b> {% endfor %} !!!\n";
        assert_eq!(check_quality(&file("a.py", &prose.repeat(10)), &cfg), Err(DropReason::SyntaxErrors));
        // No grammar: always kept.
        assert_eq!(error_share(&file("a.rb", &prose.repeat(10))), None);
        assert_eq!(check_quality(&file("a.rb", &prose.repeat(10)), &cfg), Ok(()));
    }

    #[test]
    fn threshold_is_strictly_greater_than() {
        let text = format!("{}def broken(:\n", "def f(x):\n    return x\n".repeat(5));
        let f = file("a.py", &text);
        let share = error_share(&f).unwrap();
        assert!(share > 0.0 && share < 1.0, "{share}");
        assert_eq!(check_quality(&f, &QualityConfig { max_error_share: share }), Ok(()));
        assert_eq!(check_quality(&f, &QualityConfig { max_error_share: share * 0.999 }), Err(DropReason::SyntaxErrors));
    }
}
