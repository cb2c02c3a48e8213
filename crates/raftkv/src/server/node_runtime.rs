//! The Raft node's own runtime: a thread of its own for the node's event loop, its transport
//! and the apply loop, apart from the HTTP runtime.

use tokio::sync::oneshot;

/// The Raft node's own runtime: one thread for its event loop, its transport and the apply
/// loop. On the HTTP runtime they waited behind every request ready at the time, so under
/// hundreds of clients a follower's answer waited milliseconds to be read, and each write as
/// long for its commit; here they run as soon as their input arrives. A current-thread runtime
/// driven by a thread of its own: one thread needs no work-stealing scheduler.
pub(super) struct NodeRuntime {
    handle: tokio::runtime::Handle,
    /// Dropped, it ends the thread's `block_on`; the runtime then stops its tasks.
    stop: Option<oneshot::Sender<()>>,
}

impl NodeRuntime {
    pub(super) fn start() -> Result<NodeRuntime, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .thread_name("raft-node")
            .enable_all()
            .build()
            .map_err(|error| format!("cannot start the node's runtime: {error}"))?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("raft-node".into())
            .spawn(move || {
                runtime.block_on(async {
                    let _ = stopped.await;
                });
                // Its tasks are stopped without waiting for blocking ones (a snapshot encode).
                runtime.shutdown_background();
            })
            .map_err(|error| format!("cannot start the node's thread: {error}"))?;
        Ok(NodeRuntime {
            handle,
            stop: Some(stop),
        })
    }

    pub(super) fn enter(&self) -> tokio::runtime::EnterGuard<'_> {
        self.handle.enter()
    }

    pub(super) fn spawn<F>(&self, future: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.handle.spawn(future);
    }
}

impl Drop for NodeRuntime {
    fn drop(&mut self) {
        // The last handle on the server may go inside an async context, where waiting for
        // the runtime's tasks to stop would panic; the thread stops them and nobody waits.
        drop(self.stop.take());
    }
}
