//! A client connection to clawgate spoken to byte by byte, and the raw
//! requests it sends as alice.

use super::*;

/// A request as raw bytes, as alice. `extra`: header lines, each ending
/// in CRLF. A non-empty body gets a content-length unless `extra` sets a
/// transfer-encoding.
pub(crate) fn raw_request(method: &str, path: &str, extra: &str, body: &[u8]) -> Vec<u8> {
    let length = if body.is_empty() || extra.to_ascii_lowercase().contains("transfer-encoding") {
        String::new()
    } else {
        format!("content-length: {}\r\n", body.len())
    };
    let mut r = format!(
        "{method} {path} HTTP/1.1\r\nhost: gw\r\nauthorization: {}\r\n{extra}{length}\r\n",
        bearer()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

#[derive(Debug)]
pub(crate) struct RawResp {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl RawResp {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One client connection to clawgate, spoken to byte by byte.
pub(crate) struct RawClient {
    pub(crate) s: TcpStream,
    pub(crate) buf: Vec<u8>,
}

impl RawClient {
    pub(crate) async fn connect(addr: SocketAddr) -> RawClient {
        RawClient {
            s: TcpStream::connect(addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    pub(crate) async fn send(&mut self, bytes: &[u8]) {
        timeout(WAIT, self.s.write_all(bytes))
            .await
            .expect("write within 10s")
            .expect("clawgate accepts the bytes");
    }

    /// Read more; false at end of stream. Panics after WAIT.
    pub(crate) async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        match timeout(WAIT, self.s.read(&mut chunk))
            .await
            .expect("clawgate answers within 10s")
        {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// Just the next response head (status and headers), consumed.
    pub(crate) async fn head(&mut self) -> (u16, Vec<(String, String)>) {
        let end = loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                break end;
            }
            assert!(
                self.fill().await,
                "connection closed before a response head; got {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.buf.drain(..end + 4);
        let (line, headers) = parse_headers(&head);
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?}"));
        (status, headers)
    }

    /// The next complete response to a `method` request.
    pub(crate) async fn response(&mut self, method: &str) -> RawResp {
        let (status, headers) = self.head().await;
        let no_body = method == "HEAD" || status / 100 == 1 || status == 204 || status == 304;
        let chunked = header(&headers, "transfer-encoding").is_some_and(|t| t == "chunked");
        let body = if no_body {
            Vec::new()
        } else if chunked {
            loop {
                match decode_chunked(&self.buf) {
                    Ok(Some((data, used))) => {
                        self.buf.drain(..used);
                        break data;
                    }
                    Ok(None) => assert!(self.fill().await, "chunked body cut short"),
                    Err(e) => panic!("clawgate sent a bad chunked body: {e}"),
                }
            }
        } else if let Some(n) = header(&headers, "content-length") {
            let n: usize = n.parse().unwrap();
            while self.buf.len() < n {
                assert!(self.fill().await, "body cut short");
            }
            self.buf.drain(..n).collect()
        } else {
            while self.fill().await {}
            std::mem::take(&mut self.buf)
        };
        RawResp {
            status,
            headers,
            body,
        }
    }

    /// Send a request and read its response.
    pub(crate) async fn exchange(
        &mut self,
        method: &str,
        path: &str,
        extra: &str,
        body: &[u8],
    ) -> RawResp {
        self.send(&raw_request(method, path, extra, body)).await;
        self.response(method).await
    }

    /// Nothing more arrives for `d` (and the connection stays open).
    pub(crate) async fn quiet_for(&mut self, d: Duration) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut chunk = [0u8; 1024];
        match timeout(d, self.s.read(&mut chunk)).await {
            Err(_) => true,
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                false
            }
            Ok(Err(_)) => false,
        }
    }
}
