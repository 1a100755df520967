//! A local SMTP server for the tests: it speaks the protocol a real relay
//! does (greeting, EHLO, MAIL, RCPT, DATA, QUIT) to the service's real
//! client (lettre) and keeps what it receives, so tests read the mail the
//! service sent. One per test, on a free port.

use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One mail as received.
#[derive(Debug, Clone)]
pub struct Mail {
    pub recipients: Vec<String>,
    /// Headers and body, as sent.
    pub data: String,
}

#[derive(Debug, Clone, Default)]
pub struct MailSink {
    pub port: u16,
    received: Arc<Mutex<Vec<Mail>>>,
}

impl MailSink {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the mail sink");
        let sink = MailSink {
            port: listener.local_addr().expect("address").port(),
            received: Arc::default(),
        };
        let received = sink.received.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let received = received.clone();
                tokio::spawn(async move {
                    let _ = session(socket, received).await;
                });
            }
        });
        sink
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The mails sent to `address` so far.
    pub fn to(&self, address: &str) -> Vec<Mail> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.recipients.iter().any(|r| r.eq_ignore_ascii_case(address)))
            .cloned()
            .collect()
    }
}

async fn session(
    socket: tokio::net::TcpStream,
    received: Arc<Mutex<Vec<Mail>>>,
) -> std::io::Result<()> {
    let (reader, mut writer) = socket.into_split();
    let mut lines = BufReader::new(reader).lines();
    writer.write_all(b"220 sink.test ESMTP ready\r\n").await?;
    let mut recipients = Vec::new();
    while let Some(line) = lines.next_line().await? {
        let verb = line
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" | "HELO" => {
                writer
                    .write_all(b"250-sink.test\r\n250 8BITMIME\r\n")
                    .await?;
            }
            "MAIL" => {
                recipients.clear();
                writer.write_all(b"250 OK\r\n").await?;
            }
            "RCPT" => {
                let address = line
                    .split_once('<')
                    .and_then(|(_, rest)| rest.split_once('>'))
                    .map(|(address, _)| address.to_owned())
                    .unwrap_or_default();
                recipients.push(address);
                writer.write_all(b"250 OK\r\n").await?;
            }
            "DATA" => {
                writer.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let mut data = String::new();
                while let Some(line) = lines.next_line().await? {
                    if line == "." {
                        break;
                    }
                    // Dot-stuffing (RFC 5321 4.5.2).
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                    data.push('\n');
                }
                received.lock().unwrap().push(Mail {
                    recipients: std::mem::take(&mut recipients),
                    data,
                });
                writer.write_all(b"250 OK queued\r\n").await?;
            }
            "RSET" | "NOOP" => writer.write_all(b"250 OK\r\n").await?,
            "QUIT" => {
                writer.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => writer.write_all(b"502 not implemented\r\n").await?,
        }
    }
    Ok(())
}
