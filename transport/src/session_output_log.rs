//! `SessionOutputLog`: every sequenced message one session has been sent
//! today, in order, so a client that logs in again with a requested sequence
//! number gets each message from that number on, with no gap and no
//! duplicate. The log holds OUCH payloads (not SoupBinTCP frames); message
//! `n` (1-based, as SoupBinTCP numbers them) is `message(n)`. It is bounded
//! by `messages_max` from the config: `append` refuses beyond it and the
//! gateway treats that as fatal (fail-stop), because dropping a sequenced
//! message would break the no-gap promise.
//!
//! The log lives in memory and is rebuilt from the journal at start-up: every
//! sequenced message is a deterministic function of the journaled commands,
//! so the journal is the only durable copy that is needed.

/// The messages of one session.
#[derive(Debug)]
pub struct SessionOutputLog {
    bytes: Vec<u8>,
    /// `ends[i]` is the end offset in `bytes` of message `i + 1`.
    ends: Vec<u64>,
    messages_max: usize,
}

/// The log already holds `messages_max` messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputLogFull {
    pub messages_max: usize,
}

impl SessionOutputLog {
    pub fn new(messages_max: usize) -> SessionOutputLog {
        assert!(messages_max > 0, "a log must hold at least one message");
        SessionOutputLog {
            bytes: Vec::new(),
            ends: Vec::new(),
            messages_max,
        }
    }

    /// Messages held; also the number of the last one.
    pub fn len(&self) -> u64 {
        self.ends.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Room left, in messages.
    pub fn remaining(&self) -> usize {
        self.messages_max - self.ends.len()
    }

    /// Appends one message and returns its number.
    pub fn append(&mut self, message: &[u8]) -> Result<u64, OutputLogFull> {
        if self.ends.len() >= self.messages_max {
            return Err(OutputLogFull {
                messages_max: self.messages_max,
            });
        }
        self.bytes.extend_from_slice(message);
        self.ends.push(self.bytes.len() as u64);
        Ok(self.len())
    }

    /// Message number `number` (1-based), if the log holds it.
    pub fn message(&self, number: u64) -> Option<&[u8]> {
        if number == 0 || number > self.len() {
            return None;
        }
        let index = (number - 1) as usize;
        let start = if index == 0 { 0 } else { self.ends[index - 1] } as usize;
        let end = self.ends[index] as usize;
        Some(&self.bytes[start..end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_numbered_from_one_and_read_back_exactly() {
        let mut log = SessionOutputLog::new(8);
        assert_eq!(log.append(b"first").unwrap(), 1);
        assert_eq!(log.append(b"").unwrap(), 2);
        assert_eq!(log.append(b"third!").unwrap(), 3);
        assert_eq!(log.message(1), Some(&b"first"[..]));
        assert_eq!(log.message(2), Some(&b""[..]));
        assert_eq!(log.message(3), Some(&b"third!"[..]));
        assert_eq!(log.message(0), None);
        assert_eq!(log.message(4), None);
    }

    #[test]
    fn a_full_log_refuses_and_keeps_what_it_has() {
        let mut log = SessionOutputLog::new(2);
        log.append(b"a").unwrap();
        log.append(b"b").unwrap();
        assert_eq!(log.append(b"c"), Err(OutputLogFull { messages_max: 2 }));
        assert_eq!(log.len(), 2);
        assert_eq!(log.message(2), Some(&b"b"[..]));
        assert_eq!(log.remaining(), 0);
    }
}
