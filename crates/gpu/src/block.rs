//! Running wgpu's futures to completion natively. Native wgpu resolves its futures during
//! `Device::poll` (which the callers do before awaiting), so a spin on a no-op waker is
//! enough and no executor crate is needed.

use std::future::Future;
use std::task::{Context, Poll, Waker};

/// Drives `f` to completion on this thread.
pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}
