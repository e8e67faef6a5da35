//! Benchmarks through the generic task loop pieces: MBPP's reference code (499/500, task 367
//! failing by design), canonical infilling middles of every set, hostile completions (NUL
//! bytes, 10 MB) through the scorer, and the run directory (resume, torn lines, mismatch).

use std::path::{Path, PathBuf};
use std::process::Command;

use kiln_eval::record::{self, RunDir, Status, KEEP_BYTES};
use kiln_eval::sandbox::{detect_isolation, Limits};
use kiln_eval::task::{self, InfillSet};
use kiln_eval::{humaneval, infilling, mbpp};

fn shared(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/benchmarks").join(p)
}

fn python_ok() -> bool {
    let ok = Command::new("python3").args(["-c", "import numpy"]).status().is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIP: python3 with numpy is not installed (apt-get install python3 python3-numpy)");
    }
    ok
}

fn workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()).max(2)
}

#[test]
fn mbpp_prompt_follows_deepseek_3_shot_format() {
    let m = mbpp::load(&shared("mbpp/mbpp.jsonl")).unwrap();
    assert_eq!(m.test.len(), 500);
    assert_eq!((m.test[0].task_id, m.test[499].task_id), (11, 510));
    let p = mbpp::prompt(&m, &m.test[0]);
    assert_eq!(p.matches("You are an expert Python programmer, and here is your task: ").count(), 4);
    assert_eq!(p.matches("[DONE]").count(), 3, "three exemplars");
    assert!(
        p.starts_with("You are an expert Python programmer, and here is your task: Write a function to find the similar elements"),
        "exemplar 1 is task 2"
    );
    assert!(p.ends_with("Your code should pass these tests:\n\nassert remove_Occ(\"hello\",\"l\") == \"heo\"\nassert remove_Occ(\"abcda\",\"a\") == \"bcd\"\nassert remove_Occ(\"PHP\",\"P\") == \"H\"\n[BEGIN]"), "{}", &p[p.len() - 300..]);
    assert!(!p.contains('\r') && !p.contains('\t'), "exemplar code: no CR, tabs as spaces");
    assert_eq!(mbpp::extract("\n def f(): pass \n[DONE]\nmore"), "def f(): pass");
}

#[test]
fn mbpp_reference_code_scores_499_of_500_and_367_is_the_failure() {
    if !python_ok() {
        return;
    }
    let m = mbpp::load(&shared("mbpp/mbpp.jsonl")).unwrap();
    let tasks = task::mbpp_tasks(&m);
    let items = tasks.iter().map(|t| (t, 0, Ok(t.canonical.clone()))).collect();
    let mut records = Vec::new();
    let started = std::time::Instant::now();
    record::score_many(items, workers(), &Limits::default(), detect_isolation(), |r| {
        records.push(r);
        Ok(())
    })
    .unwrap();
    eprintln!("500 MBPP programs in {:.1} s with {} workers", started.elapsed().as_secs_f64(), workers());
    let failed: Vec<_> = records.iter().filter(|r| !r.passed).collect();
    assert_eq!(records.len(), 500);
    assert_eq!(failed.len(), 1, "{:?}", failed.iter().map(|r| (&r.task_id, &r.stderr)).collect::<Vec<_>>());
    assert_eq!(failed[0].task_id, "mbpp/367");
    assert!(failed[0].stderr.contains("NameError") && failed[0].stderr.contains("root"), "{}", failed[0].stderr);
}

#[test]
fn canonical_middles_pass_for_a_sample_of_every_infilling_set() {
    if !python_ok() {
        return;
    }
    for (set, every) in [(InfillSet::Single, 97), (InfillSet::Multi, 487), (InfillSet::RandomSpan, 137), (InfillSet::RandomSpanLight, 23)] {
        let problems = infilling::load(&shared("humaneval-infilling").join(set.file_name())).unwrap();
        let tasks = task::infilling_tasks(&problems, set);
        let picked: Vec<_> = tasks.iter().step_by(every).collect();
        assert!(picked.len() >= 7, "{set:?}");
        // Multi-line and random-span middles span lines: scoring must keep them whole.
        if set != InfillSet::Single {
            assert!(
                picked.iter().any(|t| t.canonical.trim_end().contains('\n')) || set == InfillSet::RandomSpanLight,
                "{set:?} has a multi-line middle in the sample"
            );
            let t = tasks.iter().find(|t| t.canonical.trim_end().contains('\n')).unwrap();
            assert_eq!((t.finish)(&t.canonical), t.canonical, "{set:?}: the middle is not cut at a newline");
        }
        let items = picked.iter().map(|t| (*t, 0, Ok(t.canonical.clone()))).collect();
        let mut records = Vec::new();
        record::score_many(
            items,
            workers(),
            &Limits { timeout: std::time::Duration::from_secs(3), ..Limits::default() },
            detect_isolation(),
            |r| {
                records.push(r);
                Ok(())
            },
        )
        .unwrap();
        for r in &records {
            assert!(r.passed, "{set:?} {}: {}", r.task_id, r.stderr);
            assert_eq!(r.exact_match, Some(true));
        }
        // A wrong middle fails and does not match.
        let t = picked[0];
        let r = record::score(t, 0, Ok("    raise ValueError('wrong')\n".into()), &Limits::default(), detect_isolation()).unwrap();
        assert_eq!((r.passed, r.exact_match), (false, Some(false)), "{set:?}");
    }
}

#[test]
fn nul_bytes_and_10_mb_completions_are_scored_and_cut_in_the_record() {
    if !python_ok() {
        return;
    }
    let problems = humaneval::load(&shared("humaneval/HumanEval.jsonl.gz")).unwrap();
    let tasks = task::humaneval_tasks(&problems[..1]);
    let t = &tasks[0];
    let iso = detect_isolation();
    let limits = Limits::default();
    let nul = format!("{}\0\0\0", t.canonical);
    let r = record::score(t, 0, Ok(nul.clone()), &limits, iso).unwrap();
    assert_eq!(r.status, Status::Failed, "Python refuses source with NUL bytes");
    assert_eq!(r.completion, nul, "short completions are kept whole, NULs included");
    // 10 MB of comment after a correct body: the program is a file, so it runs and passes.
    let big = format!("{}\n{}\n", t.canonical, "#".repeat(10 << 20));
    let started = std::time::Instant::now();
    let r = record::score(t, 0, Ok(big.clone()), &limits, iso).unwrap();
    assert!(started.elapsed().as_secs() < 60);
    assert_eq!(r.status, Status::Passed, "{}", r.stderr);
    assert!(r.completion_truncated && r.completion.len() <= KEEP_BYTES && r.completion_bytes == big.len());
    // 10 MB of garbage with NULs: fails, does not hang.
    let junk: String = "\0x".repeat(5 << 20);
    let r = record::score(t, 1, Ok(junk), &limits, iso).unwrap();
    assert_ne!(r.status, Status::Passed);
    assert!(r.completion_truncated);
    // The record still serialises to one JSON line.
    let line = serde_json::to_string(&r).unwrap();
    assert!(!line.contains('\n') && line.len() < 6 * KEEP_BYTES + 8192, "a NUL is 6 bytes escaped; the line stays bounded");
}

#[test]
fn run_dir_resumes_drops_a_torn_line_and_refuses_other_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let settings = serde_json::json!({"benchmark": "mbpp", "temperature": 0.0, "samples": 2});
    let (mut d, old) = RunDir::open(&dir, &settings).unwrap();
    assert!(old.is_empty());
    let problems = humaneval::load(&shared("humaneval/HumanEval.jsonl.gz")).unwrap();
    let tasks = task::humaneval_tasks(&problems[..2]);
    let mk = |i: usize, s: usize, pass: bool| record::Record {
        task_id: tasks[i].task_id.clone(),
        sample: s,
        language: "python".into(),
        prompt: String::new(),
        completion: String::new(),
        completion_truncated: false,
        completion_bytes: 0,
        status: if pass { Status::Passed } else { Status::Failed },
        passed: pass,
        exact_match: None,
        stderr: String::new(),
        error: None,
    };
    d.append(&mk(0, 0, true)).unwrap();
    d.append(&mk(0, 1, false)).unwrap();
    d.append(&mk(1, 0, false)).unwrap();
    drop(d);
    // A crash mid-write: half a line at the end.
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("samples.jsonl"))
        .unwrap()
        .write_all(b"{\"task_id\":\"HumanEval/1\",\"sam")
        .unwrap();
    let (mut d, old) = RunDir::open(&dir, &settings).unwrap();
    assert_eq!(old.len(), 3, "the torn line is dropped");
    d.append(&mk(1, 1, true)).unwrap();
    drop(d);
    let text = std::fs::read_to_string(dir.join("samples.jsonl")).unwrap();
    assert_eq!(text.lines().count(), 4);
    assert!(text.lines().all(|l| serde_json::from_str::<record::Record>(l).is_ok()), "{text}");
    let (_, all) = RunDir::open(&dir, &settings).unwrap();
    let (scores, per_lang) = record::summarize(&all);
    assert_eq!((scores.problems, scores.samples, scores.passed), (2, 4, 2));
    assert_eq!(scores.pass_at_k.get("pass@1"), Some(&0.5));
    assert!(!scores.pass_at_k.contains_key("pass@10"), "k above the samples per problem is not reported");
    assert_eq!(per_lang.keys().collect::<Vec<_>>(), ["python"]);
    let table = record::markdown("humaneval", &scores, &per_lang);
    assert!(table.contains("| humaneval | python | 2 | 4 | 50.0% |"), "{table}");
    // Other settings: refused, naming the setting.
    let other = serde_json::json!({"benchmark": "mbpp", "temperature": 0.8, "samples": 2});
    let err = RunDir::open(&dir, &other).unwrap_err().to_string();
    assert!(err.contains("temperature") && err.contains("0.8"), "{err}");
    // A damaged line in the middle is named, not silently skipped.
    let mut lines: Vec<&str> = text.lines().collect();
    lines[1] = "garbage";
    std::fs::write(dir.join("samples.jsonl"), lines.join("\n") + "\n").unwrap();
    let err = RunDir::open(&dir, &settings).unwrap_err().to_string();
    assert!(err.contains("samples.jsonl") && err.contains("line 2"), "{err}");
}

#[test]
fn mbpp_rows_with_missing_fields_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("mbpp.jsonl");
    std::fs::write(&bad, "{\"task_id\": 2, \"text\": \"x\", \"code\": \"y\"}\n").unwrap();
    let err = mbpp::load(&bad).unwrap_err().to_string();
    assert!(err.contains("mbpp.jsonl") && err.contains("line 1") && err.contains("test_list"), "{err}");
    std::fs::write(&bad, "{\"task_id\": 2, \"text\": \"x\", \"code\": \"y\", \"test_list\": []}\n").unwrap();
    let err = mbpp::load(&bad).unwrap_err().to_string();
    assert!(err.contains("task_id 3"), "{err}");
}
