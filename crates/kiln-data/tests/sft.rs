//! SFT samples: the instruct template, the loss mask, and the .bin/.idx/.mask files.

mod common;

use kiln_data::{tokenize_conversation, tokenize_example, DType, DataError, DocEncoder, SftReader, SftTokens, SftWriter};
use kiln_tokenizer::special::{chat_prompt, Role, BOS, EOT};

fn masked(tok: &kiln_tokenizer::Tokenizer, s: &SftTokens, want: u8) -> String {
    let ids: Vec<u32> = s.ids.iter().zip(&s.mask).filter(|(_, &m)| m == want).map(|(&i, _)| i).collect();
    tok.decode(&ids, false).unwrap()
}

/// Runs of equal mask values, as (value, length).
fn runs(mask: &[u8]) -> Vec<(u8, usize)> {
    let mut out: Vec<(u8, usize)> = Vec::new();
    for &m in mask {
        match out.last_mut() {
            Some((v, n)) if *v == m => *n += 1,
            _ => out.push((m, 1)),
        }
    }
    out
}

#[test]
fn the_mask_covers_exactly_the_response_and_eot() {
    let tok = common::tokenizer();
    let enc = DocEncoder::new(&tok).unwrap();
    let (q, a) = ("Write add in Python. 用中文", "def add(a, b):\n    return a + b  # 🦀");
    let s = tokenize_example(&enc, q, a).unwrap();
    assert_eq!(s.ids.len(), s.mask.len());
    let eot = tok.special().eot.unwrap();
    assert_eq!(s.ids[0], tok.special().bos.unwrap());
    assert_eq!(*s.ids.last().unwrap(), eot);
    // The whole sample is the released template's text (minus the newline after <|EOT|>).
    let rendered = chat_prompt(&[(Role::User, q), (Role::Assistant, a)], false);
    assert_eq!(format!("{}\n", tok.decode(&s.ids, false).unwrap()), format!("{BOS}{rendered}"));
    // Mask: zeros, then ones to the end; the ones are the response, its newline and <|EOT|>.
    assert_eq!(runs(&s.mask).iter().map(|r| r.0).collect::<Vec<_>>(), vec![0, 1]);
    assert_eq!(masked(&tok, &s, 1), format!("{a}\n{EOT}"));
    assert_eq!(masked(&tok, &s, 0), format!("{BOS}{}", chat_prompt(&[(Role::User, q)], true) + "\n"));
    assert_eq!(s.target_tokens(), s.mask.iter().filter(|&&m| m == 1).count());
}

#[test]
fn multi_turn_with_a_system_message_masks_each_response() {
    let tok = common::tokenizer();
    let enc = DocEncoder::new(&tok).unwrap();
    // The second response spells <|EOT|> as text: it must stay text, not end the turn.
    let msgs = [
        (Role::System, "You are terse.\n"),
        (Role::User, "q1"),
        (Role::Assistant, "a1"),
        (Role::User, "q2"),
        (Role::Assistant, "print('<|EOT|>')"),
    ];
    let s = tokenize_conversation(&enc, &msgs).unwrap();
    let eot = tok.special().eot.unwrap();
    assert_eq!(s.ids.iter().filter(|&&t| t == eot).count(), 2, "one EOT id per response");
    assert_eq!(runs(&s.mask).iter().map(|r| r.0).collect::<Vec<_>>(), vec![0, 1, 0, 1]);
    assert_eq!(masked(&tok, &s, 1), format!("a1\n{EOT}print('<|EOT|>')\n{EOT}"));
    assert_eq!(format!("{}\n", tok.decode(&s.ids, false).unwrap()), format!("{BOS}{}", chat_prompt(&msgs, false)));
    assert!(!tok.decode(&s.ids, false).unwrap().contains("You are an AI programming assistant"), "a system message replaces the default");
}

#[test]
fn conversations_of_the_wrong_shape_are_refused() {
    let tok = common::tokenizer();
    let enc = DocEncoder::new(&tok).unwrap();
    for bad in [
        vec![],
        vec![(Role::User, "q")],
        vec![(Role::Assistant, "a")],
        vec![(Role::User, "q"), (Role::User, "q"), (Role::Assistant, "a")],
        vec![(Role::User, "q"), (Role::System, "s"), (Role::Assistant, "a")],
    ] {
        assert!(matches!(tokenize_conversation(&enc, &bad), Err(DataError::Conversation(_))), "{bad:?}");
    }
}

#[test]
fn writer_and_reader_keep_tokens_and_masks_aligned() {
    let tok = common::tokenizer();
    let enc = DocEncoder::new(&tok).unwrap();
    let samples: Vec<SftTokens> = (0..5).map(|i| tokenize_example(&enc, &format!("task {i}"), &"x = 1\n".repeat(i + 1)).unwrap()).collect();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("sft");
    let mut w = SftWriter::create(&p, DType::for_vocab(tok.id_count())).unwrap();
    for s in &samples {
        w.add(s).unwrap();
    }
    let counts = w.finish().unwrap();
    assert_eq!(counts.documents, 5);
    let mask = std::fs::read(dir.path().join("sft.mask")).unwrap();
    assert_eq!(mask.len() as u64, counts.tokens);
    assert_eq!(mask, samples.iter().flat_map(|s| s.mask.clone()).collect::<Vec<u8>>());
    let r = SftReader::open(&p).unwrap();
    assert_eq!(r.len(), 5);
    for (i, s) in samples.iter().enumerate() {
        assert_eq!(&r.sample(i).unwrap(), s);
    }
    // A mask that does not match the tokens is refused, naming the file.
    std::fs::write(dir.path().join("sft.mask"), &mask[1..]).unwrap();
    let err = SftReader::open(&p).unwrap_err();
    assert!(err.to_string().contains("sft.mask"), "{err}");
    let mut bad = mask.clone();
    bad[3] = 7;
    std::fs::write(dir.path().join("sft.mask"), &bad).unwrap();
    assert!(SftReader::open(&p).unwrap_err().to_string().contains("0 or 1"));
}
