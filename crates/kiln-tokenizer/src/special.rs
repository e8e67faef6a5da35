//! DeepSeek-Coder's special tokens and prompt layouts, defined once for all of kiln.
//! Strings are exact (spec §3.2): the BOS/EOS/FIM tokens use U+FF5C `｜` and U+2581 `▁`, not ASCII.

/// Beginning of sequence (id 32013 in the released vocabulary).
pub const BOS: &str = "<｜begin▁of▁sentence｜>";
/// End of sequence for base models, and padding (id 32014).
pub const EOS: &str = "<｜end▁of▁sentence｜>";
/// FIM: separates the prefix from the suffix (id 32015).
pub const FIM_HOLE: &str = "<｜fim▁hole｜>";
/// FIM: comes first, before the prefix (id 32016).
pub const FIM_BEGIN: &str = "<｜fim▁begin｜>";
/// FIM: ends the suffix; the middle follows (id 32017).
pub const FIM_END: &str = "<｜fim▁end｜>";
/// Unused pad token of the vocabulary (id 32018).
pub const PAD: &str = "<pad>";
/// Unused in the v1 chat template (id 32019).
pub const USER: &str = "<|User|>";
/// Unused in the v1 chat template (id 32020).
pub const ASSISTANT: &str = "<|Assistant|>";
/// End of turn: EOS of the instruct models (id 32021).
pub const EOT: &str = "<|EOT|>";

/// The instruct models' default system prompt, used when a chat has no system message (spec §8.2).
pub const DEFAULT_SYSTEM_PROMPT: &str = "You are an AI programming assistant, utilizing the Deepseek Coder model, developed by Deepseek Company, and you only answer questions related to computer science. For politically sensitive questions, security and privacy issues, and other non-computer science questions, you will refuse to answer\n";

/// The PSM fill-in-the-middle prompt of the base models: `<｜fim▁begin｜>{prefix}<｜fim▁hole｜>{suffix}<｜fim▁end｜>`.
/// The model continues with the middle and ends it with EOS. BOS is added by the tokenizer.
pub fn fim_prompt(prefix: &str, suffix: &str) -> String {
    format!("{FIM_BEGIN}{prefix}{FIM_HOLE}{suffix}{FIM_END}")
}

/// Who wrote a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Replaces the default system prompt.
    System,
    /// An instruction.
    User,
    /// A model reply.
    Assistant,
}

/// The released instruct models' chat template (spec §8.2), without the leading BOS (the tokenizer
/// adds it). With `add_generation_prompt` the text ends with `### Response:` for the model to continue.
pub fn chat_prompt(messages: &[(Role, &str)], add_generation_prompt: bool) -> String {
    let mut out = String::new();
    if !messages.iter().any(|(r, _)| *r == Role::System) {
        out.push_str(DEFAULT_SYSTEM_PROMPT);
    }
    for (role, content) in messages {
        match role {
            Role::System => out.push_str(content),
            Role::User => {
                out.push_str("### Instruction:\n");
                out.push_str(content);
                out.push('\n');
            }
            Role::Assistant => {
                out.push_str("### Response:\n");
                out.push_str(content);
                out.push('\n');
                out.push_str(EOT);
                out.push('\n');
            }
        }
    }
    if add_generation_prompt {
        out.push_str("### Response:");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fim_begin_has_the_published_utf8_bytes() {
        // Hexdump from DeepSeek-Coder-V2 issue #27 (spec §3.2).
        let expected = [0x3c, 0xef, 0xbd, 0x9c, 0x66, 0x69, 0x6d, 0xe2, 0x96, 0x81, 0x62, 0x65, 0x67, 0x69, 0x6e, 0xef, 0xbd, 0x9c, 0x3e];
        assert_eq!(FIM_BEGIN.as_bytes(), expected);
    }

    #[test]
    fn fim_prompt_is_psm() {
        assert_eq!(fim_prompt("a", "b"), "<｜fim▁begin｜>a<｜fim▁hole｜>b<｜fim▁end｜>");
    }

    #[test]
    fn chat_prompt_matches_the_template() {
        let p = chat_prompt(&[(Role::User, "hi"), (Role::Assistant, "yo"), (Role::User, "again")], true);
        let want =
            format!("{DEFAULT_SYSTEM_PROMPT}### Instruction:\nhi\n### Response:\nyo\n<|EOT|>\n### Instruction:\nagain\n### Response:");
        assert_eq!(p, want);
        let with_system = chat_prompt(&[(Role::System, "S"), (Role::User, "q")], false);
        assert_eq!(with_system, "S### Instruction:\nq\n");
    }
}
