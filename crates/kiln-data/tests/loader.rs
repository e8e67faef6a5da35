//! The window loader: every window once per epoch, seeded orders, exact resume from a cursor.

use std::path::Path;

use kiln_data::{Cursor, DType, DataError, MegatronWriter, WindowLoader};

const WINDOW: usize = 9;

/// `n` windows; window `i` is `[i, i, …]` so a batch shows which windows it holds.
fn dataset(dir: &Path, n: u32) -> std::path::PathBuf {
    let p = dir.join("train");
    let mut w = MegatronWriter::create(&p, DType::U16).unwrap();
    for i in 0..n {
        w.add_document(&[i; WINDOW]).unwrap();
    }
    w.finish().unwrap();
    p
}

fn ids(batch: &[Vec<u32>]) -> Vec<u32> {
    batch.iter().map(|w| w[0]).collect()
}

#[test]
fn every_window_appears_once_per_epoch_in_a_seeded_order() {
    let dir = tempfile::tempdir().unwrap();
    let p = dataset(dir.path(), 23);
    let mut l = WindowLoader::open(&p, Some(5)).unwrap();
    assert_eq!((l.windows(), l.window_tokens()), (23, WINDOW));
    let mut seen = Vec::new();
    while seen.len() < 3 * 23 {
        let b = l.next_batch(4).unwrap();
        assert!(b.iter().all(|w| w.len() == WINDOW && w.iter().all(|&t| t == w[0])));
        seen.extend(ids(&b));
    }
    let epochs: Vec<Vec<u32>> = seen.chunks(23).take(3).map(|c| c.to_vec()).collect();
    for e in &epochs {
        let mut s = e.clone();
        s.sort();
        assert_eq!(s, (0..23).collect::<Vec<_>>(), "an epoch is a permutation");
    }
    assert_ne!(epochs[0], epochs[1], "epochs are reshuffled");
    assert_ne!(epochs[0], (0..23).collect::<Vec<_>>(), "epoch 0 is shuffled");
    // Another seed, another order; no seed, file order.
    let mut other = WindowLoader::open(&p, Some(6)).unwrap();
    assert_ne!(ids(&other.next_batch(23).unwrap()), epochs[0]);
    let mut plain = WindowLoader::open(&p, None).unwrap();
    assert_eq!(ids(&plain.next_batch(23).unwrap()), (0..23).collect::<Vec<_>>());
}

#[test]
fn a_resumed_loader_yields_the_same_batches() {
    let dir = tempfile::tempdir().unwrap();
    let p = dataset(dir.path(), 17);
    let mut straight = WindowLoader::open(&p, Some(77)).unwrap();
    let want: Vec<Vec<u32>> = (0..20).map(|_| ids(&straight.next_batch(5).unwrap())).collect();
    // Stop after various numbers of batches (inside an epoch, across a boundary), save the
    // cursor as JSON, reopen and continue.
    for stop in [0, 1, 3, 4, 7, 13] {
        let mut first = WindowLoader::open(&p, Some(77)).unwrap();
        let mut got: Vec<Vec<u32>> = (0..stop).map(|_| ids(&first.next_batch(5).unwrap())).collect();
        let saved = serde_json::to_string(&first.cursor()).unwrap();
        drop(first);
        let mut resumed = WindowLoader::open(&p, Some(77)).unwrap();
        resumed.set_cursor(serde_json::from_str::<Cursor>(&saved).unwrap()).unwrap();
        got.extend((stop..20).map(|_| ids(&resumed.next_batch(5).unwrap())));
        assert_eq!(got, want, "resumed after {stop} batches");
    }
    // The cursor counts epochs: 20 batches of 5 over 17 windows end in epoch 5, position 15.
    assert_eq!(straight.cursor(), Cursor { epoch: 100 / 17, position: 100 % 17 });
}

#[test]
fn bad_cursors_and_datasets_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dataset(dir.path(), 4);
    let mut l = WindowLoader::open(&p, Some(1)).unwrap();
    let err = l.set_cursor(Cursor { epoch: 0, position: 4 }).unwrap_err();
    assert!(matches!(err, DataError::BadCursor { .. }), "{err}");
    assert!(err.to_string().contains("train.idx"), "{err}");

    let empty = dir.path().join("empty");
    MegatronWriter::create(&empty, DType::U16).unwrap().finish().unwrap();
    assert!(matches!(WindowLoader::open(&empty, None), Err(DataError::EmptyDataset { .. })));

    let ragged = dir.path().join("ragged");
    let mut w = MegatronWriter::create(&ragged, DType::U16).unwrap();
    w.add_document(&[1, 2, 3]).unwrap();
    w.add_document(&[1, 2]).unwrap();
    w.finish().unwrap();
    let err = WindowLoader::open(&ragged, None).unwrap_err();
    assert!(err.to_string().contains("ragged.idx"), "{err}");
}
