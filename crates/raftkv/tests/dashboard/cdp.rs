//! A minimal Chrome DevTools Protocol client over `--remote-debugging-pipe`: Debian's
//! `chromium`, headless, driven through the pipe pair it reads on fd 3 and writes on fd 4
//! (JSON messages, each ended by a NUL byte).
//!
//! ```text
//!  Browser::launch ─► chromium --headless=new --remote-debugging-pipe (fds 3, 4 ◄─► pipes)
//!     reader thread: fd 4 ─► split at NUL ─► JSON ─► channel
//!  Browser::call(session, method, params) ─► {"id", "method", "params", "sessionId"}\0 ─► fd 3
//!     ◄─ the message with that id (events meanwhile: exceptions kept, the rest dropped)
//!  open(url) ─► Target.createTarget + attachToTarget (flatten) ─► Page { session }
//! ```
//!
//! Why our own and not a crate: the pipe needs no WebSocket, no HTTP discovery and no new
//! dependency at all (serde_json, libc and base64 are raftkv's already), while chromiumoxide,
//! the maintained async CDP crate, compiles the whole generated protocol. Measured on this
//! 2-core machine (2026-12-07, `/usr/bin/time cargo build` of a scratch crate depending on
//! chromiumoxide 0.9.1, debug, after `cargo clean -p` of each crate it adds): the 45 crates it
//! brings beyond raftkv's tree (chromiumoxide_cdp, async-tungstenite, reqwest, the icu and
//! url stack...) took 83 s of CPU to build, which every cold CI build would pay for one test;
//! headless_chrome is of the same kind (generated protocol, a blocking WebSocket). This file
//! is what the test needs: calls, evaluation, clicks, screenshots.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// Longest wait for the answer to one call.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// A headless chromium and the pipe to it.
pub struct Browser {
    child: Child,
    to_browser: std::fs::File,
    from_browser: mpsc::UnboundedReceiver<Value>,
    next_id: u64,
    /// Exceptions pages threw (`Runtime.exceptionThrown`), as text.
    pub exceptions: Vec<String>,
    /// Where its profile and its log are.
    profile: tempfile::TempDir,
}

/// A tab, attached with its own session.
pub struct Page {
    target: String,
    session: String,
}

/// The browser to run: `RAFTKV_CHROMIUM`, else Debian's `chromium`. None is a failure, not a
/// reason to skip: CI installs it, and a test that skips proves nothing.
fn chromium_path() -> PathBuf {
    if let Some(path) = std::env::var_os("RAFTKV_CHROMIUM") {
        return PathBuf::from(path);
    }
    let candidates = ["/usr/bin/chromium", "/usr/bin/chromium-browser"];
    candidates
        .iter()
        .map(Path::new)
        .find(|path| path.exists())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| {
            panic!(
                "no chromium at {candidates:?} (or RAFTKV_CHROMIUM): the dashboard test needs a \
                 real browser; install Debian's package: apt-get install chromium"
            )
        })
}

/// A pipe, both ends closed on exec unless moved to the child's fds.
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two new descriptors into `fds`, which we then own.
    let result = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(result, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: both are open descriptors nothing else owns.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

impl Browser {
    /// Starts a headless chromium with a temporary profile, the window `width` × `height`.
    pub fn launch(width: u32, height: u32) -> Browser {
        let path = chromium_path();
        let profile = tempfile::tempdir().expect("a profile directory");
        let log = std::fs::File::create(profile.path().join("chromium.log")).expect("log file");
        let (browser_reads, we_write) = pipe();
        let (we_read, browser_writes) = pipe();
        let (child_in, child_out) = (browser_reads.as_raw_fd(), browser_writes.as_raw_fd());
        let mut command = Command::new(&path);
        command
            .args([
                "--headless=new",
                // As root in a container there is no user namespace for the sandbox.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--remote-debugging-pipe",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-sync",
                "--disable-component-update",
                "--hide-scrollbars",
                "--mute-audio",
                "--font-render-hinting=none",
                &format!("--window-size={width},{height}"),
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("log file")))
            .stderr(Stdio::from(log));
        // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork and exec. The pipe
        // ends go to fds 3 and 4 by way of fds above 10, so neither overwrites the other.
        unsafe {
            command.pre_exec(move || {
                let high_in = libc::fcntl(child_in, libc::F_DUPFD, 10);
                let high_out = libc::fcntl(child_out, libc::F_DUPFD, 10);
                if high_in < 0
                    || high_out < 0
                    || libc::dup2(high_in, 3) < 0
                    || libc::dup2(high_out, 4) < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", path.display()));
        // The child has its copies; ours of its ends must close, so that its exit ends our
        // reads.
        drop(browser_reads);
        drop(browser_writes);
        let (sender, from_browser) = mpsc::unbounded_channel();
        let reader = std::fs::File::from(we_read);
        std::thread::spawn(move || {
            let mut reader = BufReader::new(reader);
            loop {
                let mut message = Vec::new();
                match reader.read_until(0, &mut message) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                if message.last() == Some(&0) {
                    message.pop();
                }
                match serde_json::from_slice::<Value>(&message) {
                    Ok(value) => {
                        if sender.send(value).is_err() {
                            return;
                        }
                    }
                    Err(error) => eprintln!("chromium sent a message that is not JSON: {error}"),
                }
            }
        });
        Browser {
            child,
            to_browser: std::fs::File::from(we_write),
            from_browser,
            next_id: 1,
            exceptions: Vec::new(),
            profile,
        }
    }

    /// The browser's own log (for a failing test).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.profile.path().join("chromium.log")).unwrap_or_default()
    }

    /// Calls `method` (in `page`'s session, or the browser's) and returns its result; fails
    /// the test on an error answer or none within [`CALL_TIMEOUT`].
    pub async fn call(&mut self, page: Option<&Page>, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(page) = page {
            message["sessionId"] = Value::String(page.session.clone());
        }
        let mut bytes = serde_json::to_vec(&message).expect("JSON");
        bytes.push(0);
        self.to_browser
            .write_all(&bytes)
            .unwrap_or_else(|error| panic!("{method}: the browser's pipe is closed: {error}"));
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = match tokio::time::timeout(left, self.from_browser.recv()).await {
                Ok(Some(message)) => message,
                Ok(None) => panic!("{method}: the browser exited\n{}", self.log()),
                Err(_) => panic!("{method}: no answer within {CALL_TIMEOUT:?}"),
            };
            if message.get("id").and_then(Value::as_u64) == Some(id) {
                if let Some(error) = message.get("error") {
                    panic!("{method} failed: {error}");
                }
                return message.get("result").cloned().unwrap_or(Value::Null);
            }
            self.note_event(&message);
        }
    }

    /// Keeps what an event tells that a test asserts on.
    fn note_event(&mut self, message: &Value) {
        if message.get("method").and_then(Value::as_str) == Some("Runtime.exceptionThrown") {
            let details = &message["params"]["exceptionDetails"];
            let text = details["exception"]["description"]
                .as_str()
                .or_else(|| details["text"].as_str())
                .unwrap_or("an exception")
                .to_string();
            self.exceptions.push(text);
        }
    }

    /// Opens a tab on `url`, sized `width` × `height`, and waits until it has loaded.
    pub async fn open(&mut self, url: &str, width: u32, height: u32) -> Page {
        let target = self
            .call(None, "Target.createTarget", json!({ "url": "about:blank" }))
            .await;
        let target_id = target["targetId"]
            .as_str()
            .expect("a target id")
            .to_string();
        let attached = self
            .call(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target_id, "flatten": true }),
            )
            .await;
        let page = Page {
            target: target_id,
            session: attached["sessionId"]
                .as_str()
                .expect("a session id")
                .to_string(),
        };
        self.call(Some(&page), "Page.enable", json!({})).await;
        self.call(Some(&page), "Runtime.enable", json!({})).await;
        self.resize(&page, width, height).await;
        self.call(Some(&page), "Page.navigate", json!({ "url": url }))
            .await;
        self.wait_for(
            &page,
            "the page loads",
            "document.readyState === 'complete'",
        )
        .await;
        page
    }

    /// Closes the tab `page` (its connections with it).
    pub async fn close(&mut self, page: Page) {
        self.call(
            None,
            "Target.closeTarget",
            json!({ "targetId": page.target }),
        )
        .await;
    }

    /// Sizes `page`'s viewport as a desktop window (or a phone's, when narrow).
    pub async fn resize(&mut self, page: &Page, width: u32, height: u32) {
        self.call(
            Some(page),
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600 }),
        )
        .await;
    }

    /// The value of the JavaScript `expression` in `page` (awaited if a promise); fails the
    /// test if it throws.
    pub async fn evaluate(&mut self, page: &Page, expression: &str) -> Value {
        let result = self
            .call(
                Some(page),
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            )
            .await;
        if let Some(exception) = result.get("exceptionDetails") {
            panic!("{expression} threw: {exception}");
        }
        result["result"]["value"].clone()
    }

    /// Polls `expression` until it is truthy (neither null, false, 0 nor ""), then returns
    /// its value; fails the test after 20 s.
    pub async fn wait_for(&mut self, page: &Page, what: &str, expression: &str) -> Value {
        self.wait_for_within(page, what, expression, Duration::from_secs(20))
            .await
    }

    /// [`Browser::wait_for`] with its own deadline.
    pub async fn wait_for_within(
        &mut self,
        page: &Page,
        what: &str,
        expression: &str,
        within: Duration,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let value = self.evaluate(page, expression).await;
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(flag) => *flag,
                Value::Number(number) => number.as_f64() != Some(0.0),
                Value::String(text) => !text.is_empty(),
                Value::Array(_) | Value::Object(_) => true,
            };
            if truthy {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not seen on the page within {within:?} (last: {value})"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks the middle of the element `selector` selects with the mouse, as a person would
    /// (pressed and released there), after scrolling it into view.
    pub async fn click(&mut self, page: &Page, selector: &str) {
        let selector_json = serde_json::to_string(selector).expect("JSON");
        let at = self
            .evaluate(
                page,
                &format!(
                    "(() => {{ const element = document.querySelector({selector_json}); \
                     if (!element) return null; element.scrollIntoView({{block: 'center'}}); \
                     const box = element.getBoundingClientRect(); \
                     return [box.x + box.width / 2, box.y + box.height / 2]; }})()"
                ),
            )
            .await;
        let (x, y) = match (at[0].as_f64(), at[1].as_f64()) {
            (Some(x), Some(y)) => (x, y),
            _ => panic!("nothing to click at {selector}"),
        };
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            self.call(
                Some(page),
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }),
            )
            .await;
        }
    }

    /// A PNG of the whole page (beyond the viewport), as wide as the viewport.
    pub async fn screenshot(&mut self, page: &Page) -> Vec<u8> {
        let metrics = self
            .call(Some(page), "Page.getLayoutMetrics", json!({}))
            .await;
        let size = &metrics["cssContentSize"];
        let (width, height) = (
            size["width"].as_f64().expect("a width"),
            size["height"].as_f64().expect("a height"),
        );
        let shot = self
            .call(
                Some(page),
                "Page.captureScreenshot",
                json!({
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": { "x": 0, "y": 0, "width": width, "height": height, "scale": 1 },
                }),
            )
            .await;
        base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("image data"))
            .expect("base64 image")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
