//! A Server-Sent Events parser, after the WHATWG HTML standard's "event stream interpretation"
//! (§9.2.6): bytes in, in chunks cut anywhere, whole events out.
//!
//! ```text
//!  chunk ─► lines (LF, CRLF or CR; a CR at a chunk's end waits to see whether LF follows)
//!             ":..."        a comment: ignored (servers send them to keep a connection alive)
//!             "field:value" one space after the colon dropped; "field" alone: empty value
//!               event  the event's type              data  appended, with LF between lines
//!               id     the last event id (kept across events; ignored if it holds NUL)
//!               retry  the reconnection time, when all ASCII digits; other fields ignored
//!             ""            dispatch: an event when some data was given, then reset type/data
//! ```
//!
//! An event still open when the stream ends is dropped, as the standard says: only a blank line
//! completes one. Every line and event is bounded ([`EVENT_BYTES_MAX`]), so a peer that never
//! ends a line cannot make the parser buffer without limit.

/// Largest line, and largest event's data, the parser accepts, in bytes. A watch event carries
/// one revision's changes, so it is bounded by what one write may change; far above it is a
/// misbehaving peer.
pub(crate) const EVENT_BYTES_MAX: usize = 64 * 1024 * 1024;

/// One dispatched event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// The `event:` field, `message` when none was given.
    pub(crate) event_type: String,
    /// The `data:` lines joined with LF.
    pub(crate) data: String,
    /// The last event id at dispatch (it carries over from earlier events); empty when none
    /// was ever set.
    pub(crate) last_event_id: String,
}

/// A stream that broke the parser's limits.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("event stream line or event longer than {EVENT_BYTES_MAX} bytes")]
pub(crate) struct SseTooLarge;

/// The parser's state between chunks.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    /// The bytes of the line being read. Invariant: holds no CR or LF.
    line: Vec<u8>,
    /// The last chunk ended with CR: an LF first in the next chunk belongs to that line end.
    after_cr: bool,
    /// Whether the stream's start (where a byte order mark is dropped) has been passed.
    started: bool,
    event_type: String,
    data: String,
    /// Whether a `data` field was seen since the last dispatch (an empty `data:` counts).
    data_seen: bool,
    last_event_id: String,
    retry_millis: Option<u64>,
}

impl SseParser {
    pub(crate) fn new() -> SseParser {
        SseParser::default()
    }

    /// The reconnection time the stream last asked for with `retry:`, in milliseconds.
    pub(crate) fn retry_millis(&self) -> Option<u64> {
        self.retry_millis
    }

    /// Feeds the next bytes of the stream; returns the events they completed, in order.
    pub(crate) fn push(&mut self, mut chunk: &[u8]) -> Result<Vec<SseEvent>, SseTooLarge> {
        let mut events = Vec::new();
        if !self.started && !chunk.is_empty() {
            // A byte order mark may open the stream; it may arrive cut over chunks, so wait for
            // enough bytes to tell.
            self.line.extend_from_slice(chunk);
            const BOM: &[u8] = b"\xEF\xBB\xBF";
            if self.line.len() < BOM.len() && BOM.starts_with(&self.line) {
                return Ok(events);
            }
            self.started = true;
            let pending = std::mem::take(&mut self.line);
            let body = pending.strip_prefix(BOM).unwrap_or(&pending);
            self.feed(body, &mut events)?;
            return Ok(events);
        }
        // An empty chunk says nothing about what follows a CR.
        if self.after_cr && !chunk.is_empty() {
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
            self.after_cr = false;
        }
        self.feed(chunk, &mut events)?;
        Ok(events)
    }

    fn feed(&mut self, mut chunk: &[u8], events: &mut Vec<SseEvent>) -> Result<(), SseTooLarge> {
        while let Some(end) = chunk
            .iter()
            .position(|&byte| byte == b'\n' || byte == b'\r')
        {
            self.extend_line(&chunk[..end])?;
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, events)?;
            let ending = if chunk[end] == b'\r' {
                match chunk.get(end + 1) {
                    Some(b'\n') => 2,
                    Some(_) => 1,
                    None => {
                        self.after_cr = true;
                        1
                    }
                }
            } else {
                1
            };
            chunk = &chunk[end + ending..];
        }
        self.extend_line(chunk)
    }

    fn extend_line(&mut self, bytes: &[u8]) -> Result<(), SseTooLarge> {
        if self.line.len() + bytes.len() > EVENT_BYTES_MAX {
            return Err(SseTooLarge);
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn process_line(&mut self, line: &[u8], events: &mut Vec<SseEvent>) -> Result<(), SseTooLarge> {
        if line.is_empty() {
            self.dispatch(events);
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(());
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (&*line, ""),
        };
        match field {
            "event" => self.event_type = value.to_string(),
            "data" => {
                if self.data.len() + value.len() + 1 > EVENT_BYTES_MAX {
                    return Err(SseTooLarge);
                }
                self.data.push_str(value);
                self.data.push('\n');
                self.data_seen = true;
            }
            "id" if !value.contains('\0') => self.last_event_id = value.to_string(),
            "retry" if !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()) => {
                // Digits beyond u64 are a reconnection time nobody waits for: ignored.
                if let Ok(millis) = value.parse() {
                    self.retry_millis = Some(millis);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, events: &mut Vec<SseEvent>) {
        let event_type = std::mem::take(&mut self.event_type);
        let mut data = std::mem::take(&mut self.data);
        if !std::mem::take(&mut self.data_seen) {
            return;
        }
        let newline = data.pop();
        assert_eq!(newline, Some('\n'), "every data line ends with LF");
        events.push(SseEvent {
            event_type: if event_type.is_empty() {
                "message".to_string()
            } else {
                event_type
            },
            data,
            last_event_id: self.last_event_id.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn event(event_type: &str, data: &str, id: &str) -> SseEvent {
        SseEvent {
            event_type: event_type.to_string(),
            data: data.to_string(),
            last_event_id: id.to_string(),
        }
    }

    fn parse_whole(stream: &[u8]) -> Vec<SseEvent> {
        SseParser::new().push(stream).expect("within limits")
    }

    #[test]
    fn fields_comments_and_multi_line_data() {
        let stream = b": keep-alive\n\
            event: events\nid: 7\ndata: {\"a\":\ndata:1}\n\n\
            data\n\n\
            event: progress\ndata:  two spaces\nunknown: x\n\n\
            : only a comment, no dispatch\n\n";
        assert_eq!(
            parse_whole(stream),
            [
                event("events", "{\"a\":\n1}", "7"),
                // `data` alone is an empty data line; the id carries over.
                event("message", "", "7"),
                // Only the first space after the colon is dropped.
                event("progress", " two spaces", "7"),
            ]
        );
    }

    #[test]
    fn an_event_type_without_data_dispatches_nothing_and_does_not_leak() {
        assert_eq!(
            parse_whole(b"event: lost\n\ndata: x\n\n"),
            [event("message", "x", "")]
        );
    }

    #[test]
    fn every_line_ending_works_and_a_cr_lf_split_over_chunks_is_one_ending() {
        let expected = vec![event("a", "1", ""), event("b", "2", "")];
        for stream in [
            &b"event: a\ndata: 1\n\nevent: b\ndata: 2\n\n"[..],
            b"event: a\r\ndata: 1\r\n\r\nevent: b\r\ndata: 2\r\n\r\n",
            b"event: a\rdata: 1\r\revent: b\rdata: 2\r\r",
            b"event: a\r\ndata: 1\r\revent: b\ndata: 2\r\n\n",
        ] {
            assert_eq!(parse_whole(stream), expected, "{stream:?}");
        }
        let mut parser = SseParser::new();
        assert!(parser.push(b"data: 1\r").expect("ok").is_empty());
        // The LF completes the CR's line ending; had it been a second ending, the event would
        // have been dispatched here.
        assert!(parser.push(b"\n").expect("ok").is_empty());
        assert_eq!(
            parser.push(b"\r\n").expect("ok"),
            [event("message", "1", "")]
        );
    }

    #[test]
    fn id_retry_and_the_byte_order_mark() {
        let mut parser = SseParser::new();
        let events = parser
            .push(b"\xEF\xBB")
            .and_then(|mut first| {
                first.extend(parser.push(b"\xBFid: 3\nretry: 1500\nretry: 1x\ndata: a\n\n")?);
                Ok(first)
            })
            .expect("ok");
        assert_eq!(events, [event("message", "a", "3")]);
        assert_eq!(parser.retry_millis(), Some(1500));
        // An id with NUL is ignored; an empty id resets the last event id.
        assert_eq!(
            parse_whole(b"id: 4\ndata: a\n\nid: x\0y\ndata: b\n\nid\ndata: c\n\n"),
            [
                event("message", "a", "4"),
                event("message", "b", "4"),
                event("message", "c", "")
            ]
        );
    }

    #[test]
    fn an_event_cut_off_by_the_end_of_the_stream_is_dropped() {
        assert_eq!(
            parse_whole(b"data: whole\n\ndata: cut"),
            [event("message", "whole", "")]
        );
        assert_eq!(parse_whole(b"data: no blank line\n"), []);
    }

    #[test]
    fn a_line_past_the_limit_is_refused() {
        let mut parser = SseParser::new();
        let big = vec![b'x'; 1024 * 1024];
        let mut refused = false;
        for _ in 0..=EVENT_BYTES_MAX / big.len() {
            if parser.push(&big).is_err() {
                refused = true;
                break;
            }
        }
        assert!(refused, "a line without end is bounded");
    }

    /// A stream of events in every line-ending style, comments and multi-line data.
    fn stream_strategy() -> impl Strategy<Value = Vec<u8>> {
        let ending = prop_oneof![Just("\n"), Just("\r\n"), Just("\r")];
        let line = prop_oneof![
            "[a-z{}\":,0-9 ]{0,12}".prop_map(|text| format!("data: {text}")),
            "[a-z]{1,8}".prop_map(|name| format!("event: {name}")),
            "[0-9]{1,4}".prop_map(|id| format!("id: {id}")),
            "[a-z ]{0,8}".prop_map(|text| format!(":{text}")),
            Just(String::new()),
        ];
        prop::collection::vec((line, ending), 0..40).prop_map(|lines| {
            let mut stream = String::new();
            for (line, ending) in lines {
                stream.push_str(&line);
                stream.push_str(ending);
            }
            stream.into_bytes()
        })
    }

    proptest! {
        // proptest prints the failing input and persists its seed in
        // proptest-regressions/, so a failure replays.
        #[test]
        fn any_chunking_gives_the_same_events(
            stream in stream_strategy(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let whole = parse_whole(&stream);
            let mut positions: Vec<usize> =
                cuts.iter().map(|cut| cut.index(stream.len() + 1)).collect();
            positions.sort_unstable();
            let mut parser = SseParser::new();
            let mut chunked = Vec::new();
            let mut start = 0;
            for position in positions.into_iter().chain([stream.len()]) {
                chunked.extend(parser.push(&stream[start..position]).expect("within limits"));
                start = position;
            }
            prop_assert_eq!(chunked, whole);
        }
    }
}
