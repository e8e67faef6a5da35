//! kiln-data: the training data of kiln (issue #5). In: a corpus built by `kiln corpus build`
//! (Parquet shards + manifest) and a tokenizer. Out: fixed-length token windows in Megatron-LM's
//! `.bin/.idx` format that kiln's trainer, Megatron, NeMo or a 20-line numpy script can read.
//!
//! * [`fim`]: document-level fill-in-the-middle (PSM at rate 0.5, as DeepSeek-Coder trained),
//!   optional SPM, and the token layouts (`BOS … EOS` around every document).
//! * [`encode`]: text to ids so that control tokens only come from layouts, never from text.
//! * [`megatron`]: the `.bin/.idx` writer (atomic, bounded memory) and validating reader.
//! * [`split`]: the train/validation split by repository.
//! * [`pack`]: [`pack_corpus`]: corpus → FIM → tokens → `seq_len + 1` windows, in parallel
//!   with byte-identical output for any thread count; [`meta`]: the `meta.json` it writes.
//! * [`loader`]: seeded per-epoch shuffling with a resumable [`Cursor`] for the trainer.
//! * [`sft`]: instruction-tuning samples in the instruct chat template with a loss mask.
//! * [`rng`]: the value-stable random streams all of the above draw from.
//!
//! Errors: [`DataError`]; each names the file, field or token at fault and the fix.
#![deny(missing_docs)]

pub mod encode;
pub mod error;
pub mod fim;
pub mod loader;
pub mod megatron;
pub mod meta;
pub mod pack;
pub mod rng;
pub mod sft;
pub mod split;

pub use encode::{DocEncoder, FimIds};
pub use error::{DataError, Result};
pub use fim::{FimConfig, FimDoc};
pub use loader::{Cursor, WindowLoader};
pub use megatron::{DType, DatasetCounts, MegatronReader, MegatronWriter};
pub use meta::{PackSummary, SplitCounts, TokenizerFile};
pub use pack::{pack_corpus, FileOrder, PackConfig};
pub use sft::{tokenize_conversation, tokenize_example, SftReader, SftTokens, SftWriter};
pub use split::Split;
