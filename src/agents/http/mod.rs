//! HTTP agents (`openai`, `anthropic`): one iteration is one streamed model
//! call with the prompt as the user message ([`Call`]). Transient failures
//! (429, 408, 409, 5xx, a connection that fails or a stream that is cut or
//! stalls) are retried with backoff a bounded number of times within the
//! iteration's time; permanent ones (other 4xx) are not (docs/agents.md,
//! "Retries and limits"). The wire formats live in `openai` and
//! `anthropic`, the event framing in `sse`, one attempt in `attempt`.

mod anthropic;
mod attempt;
mod call;
mod openai;
mod reply;
mod spec;
mod sse;

pub(crate) use call::{Call, CallEnd};
pub(crate) use spec::{HttpSpec, SpecError};
