//! The page's end of a dedicated worker, one type for all three (simulation, training
//! race, LLM): it starts the module worker, sends `In` messages, and hands every `Out`
//! message to one callback, along with every failure as a sentence for the page: the
//! worker's script failing (`onerror`), a message the browser could not deliver
//! (`onmessageerror`), a message that is not an `Out`, or one that could not be sent.
//! Dropping the channel terminates the worker.

use std::marker::PhantomData;
use std::rc::Rc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use wasm_bindgen::JsCast as _;
use wasm_bindgen::prelude::*;
use web_sys::{ErrorEvent, MessageEvent, Worker, WorkerOptions, WorkerType};

use crate::wire;

/// What a worker reported: a message, or what went wrong (a sentence for the page).
pub type Received<Out> = Result<Out, String>;

type Sink<Out> = Rc<dyn Fn(Received<Out>)>;

/// A running dedicated worker speaking `In` (page → worker) and `Out` (worker → page).
pub struct WorkerChannel<In, Out> {
    worker: Worker,
    /// The worker, in words ("the simulation worker"), for error messages.
    name: &'static str,
    sink: Sink<Out>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_message_error: Closure<dyn FnMut(MessageEvent)>,
    _on_error: Closure<dyn FnMut(ErrorEvent)>,
    _sends: PhantomData<fn(&In)>,
}

impl<In, Out> std::fmt::Debug for WorkerChannel<In, Out> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerChannel")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<In: Serialize, Out: DeserializeOwned + 'static> WorkerChannel<In, Out> {
    /// Starts the module worker `script` (a file next to the page); `name` says which
    /// worker it is in error messages; `on_message` receives everything it reports.
    ///
    /// # Errors
    /// When the browser refuses to start the worker.
    pub fn spawn(
        script: &str,
        name: &'static str,
        on_message: impl Fn(Received<Out>) + 'static,
    ) -> Result<Self, String> {
        let options = WorkerOptions::new();
        options.set_type(WorkerType::Module);
        let worker = Worker::new_with_options(script, &options)
            .map_err(|e| format!("the browser could not start {name}: {e:?}"))?;
        let sink: Sink<Out> = Rc::new(on_message);
        let on_message = {
            let sink = Rc::clone(&sink);
            Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
                sink(
                    wire::decode(event.data())
                        .map_err(|e| format!("unreadable message from {name}: {e}")),
                );
            })
        };
        let on_message_error = {
            let sink = Rc::clone(&sink);
            Closure::<dyn FnMut(MessageEvent)>::new(move |_: MessageEvent| {
                sink(Err(format!(
                    "a message from {name} could not be delivered to the page"
                )));
            })
        };
        let on_error = {
            let sink = Rc::clone(&sink);
            Closure::<dyn FnMut(ErrorEvent)>::new(move |event: ErrorEvent| {
                // Keep the page's own handling of the event from logging it again.
                event.prevent_default();
                let what = event.message();
                sink(Err(if what.is_empty() {
                    format!("{name} stopped (its script failed to load or run)")
                } else {
                    format!("{name} stopped: {what}")
                }));
            })
        };
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        worker.set_onmessageerror(Some(on_message_error.as_ref().unchecked_ref()));
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        Ok(Self {
            worker,
            name,
            sink,
            _on_message: on_message,
            _on_message_error: on_message_error,
            _on_error: on_error,
            _sends: PhantomData,
        })
    }

    /// Sends `msg`; a failure reaches the `on_message` callback as an error.
    pub fn send(&self, msg: &In) {
        let sent = wire::encode(msg).and_then(|value| {
            self.worker
                .post_message(&value)
                .map_err(|e| format!("{e:?}"))
        });
        if let Err(e) = sent {
            (self.sink)(Err(format!(
                "could not send a message to {}: {e}",
                self.name
            )));
        }
    }
}

impl<In, Out> Drop for WorkerChannel<In, Out> {
    fn drop(&mut self) {
        self.worker.terminate();
    }
}
