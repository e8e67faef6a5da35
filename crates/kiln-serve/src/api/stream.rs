//! SSE streaming: a generation whose text arrives piece by piece, and the event stream an
//! endpoint renders from it. The endpoints differ only in how a piece and the end look.

use std::convert::Infallible;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use axum::http::StatusCode;
use axum::response::sse::Event;
use futures_util::stream::{self, Stream};
use tokio::sync::{mpsc, oneshot};

use crate::{generate, ApiError, AppState, Job, Outcome};

/// What a streaming generation yields.
pub enum StreamEvent {
    /// Final text, in order.
    Piece(String),
    /// The end.
    Done(Result<Outcome, ApiError>),
}

/// A running streamed generation.
pub struct GenerationStream {
    pieces: mpsc::UnboundedReceiver<String>,
    done: oneshot::Receiver<Result<Outcome, ApiError>>,
}

/// Starts a generation whose text arrives piece by piece; waits for a slot first, so a full
/// queue is still a plain 429 response rather than an error inside a stream.
pub(super) async fn stream_generation(state: &Arc<AppState>, job: Job) -> Result<GenerationStream, ApiError> {
    let wait = Instant::now();
    let permit = state.acquire_slot().await?;
    let queued_ms = wait.elapsed().as_secs_f64() * 1000.0;
    let (tx, rx) = mpsc::unbounded_channel();
    let (done_tx, done_rx) = oneshot::channel();
    let st = state.clone();
    tokio::spawn(async move {
        let r = generate(&st, permit, job, Arc::new(AtomicBool::new(false)), Some(tx), queued_ms).await;
        let _ = done_tx.send(r);
    });
    Ok(GenerationStream { pieces: rx, done: done_rx })
}

impl GenerationStream {
    /// SSE events: `render` turns each piece, then the end, into events. Dropping the stream
    /// (the client went away) closes the piece channel, which cancels the generation.
    pub(super) fn into_events(
        self,
        render: impl Fn(StreamEvent) -> Vec<Event> + Send + 'static,
    ) -> impl Stream<Item = Result<Event, Infallible>> + Send {
        let state = (Some(self), Vec::<Event>::new());
        stream::unfold((state, render), |((mut gen, mut pending), render)| async move {
            loop {
                if let Some(ev) = pending.pop() {
                    return Some((Ok(ev), ((gen, pending), render)));
                }
                let g = gen.as_mut()?;
                match g.pieces.recv().await {
                    Some(p) => pending = render(StreamEvent::Piece(p)),
                    None => {
                        let g = gen.take()?;
                        let done = g.done.await.unwrap_or_else(|_| {
                            Err(ApiError::status(StatusCode::INTERNAL_SERVER_ERROR, "generation task ended without a result"))
                        });
                        pending = render(StreamEvent::Done(done));
                    }
                }
                pending.reverse(); // popped from the back
            }
        })
    }
}
