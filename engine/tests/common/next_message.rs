//! Reading a test client's WebSocket messages through interruptions.

/// A WebSocket client's next message, read again when the read was interrupted: a read with a
/// timeout fails with EINTR when the test process is stopped and continued (a loaded CI machine,
/// a debugger), which says nothing about the server.
pub trait NextMessage {
    fn next_message(&mut self) -> tungstenite::Result<tungstenite::Message>;
}

impl<S: std::io::Read + std::io::Write> NextMessage for tungstenite::WebSocket<S> {
    fn next_message(&mut self) -> tungstenite::Result<tungstenite::Message> {
        loop {
            match self.read() {
                Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }
}
