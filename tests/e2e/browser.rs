//! A real browser for the page tests: Debian's chromium, headless, driven over W3C WebDriver
//! by chromedriver (both installed by `cargo xtask test`). The protocol is JSON over HTTP,
//! spoken here with the harness's own HTTP client: no WebDriver crate.

use std::{
    net::{SocketAddr, TcpListener},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use base64::Engine;
use serde_json::{Value, json};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The key W3C WebDriver names element references by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One headless chromium window.
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
}

impl Browser {
    /// Starts chromedriver on a free port and opens a window `width` × `height`.
    pub async fn start(width: u32, height: u32) -> Browser {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (`cargo xtask test` installs chromium-driver)");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let started = Instant::now();
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut browser = Browser {
            driver,
            addr,
            session: String::new(),
        };
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         format!("--window-size={width},{height}"), "--lang=zh-CN"],
                // staff's browsers speak Chinese: the console starts in it
                "prefs": { "intl.accept_languages": "zh-CN,zh" },
            },
        } } });
        let answer = browser.call("POST", "/session", caps).await;
        browser.session = answer["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"))
            .to_owned();
        browser
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        if std::env::var_os("SHOAL_TEST_WEBDRIVER_LOG").is_some() {
            eprintln!("webdriver: {method} {path} {body}");
        }
        let body = if method == "GET" || method == "DELETE" {
            String::new()
        } else {
            body.to_string()
        };
        let (status, text) = exchange(self.addr, method, path, &body).await;
        let answer: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: {status} {e}: {text}"));
        assert_eq!(status, 200, "{method} {path}: {answer}");
        if std::env::var_os("SHOAL_TEST_WEBDRIVER_LOG").is_some() {
            eprintln!(
                "webdriver: answered {}",
                answer.to_string().chars().take(300).collect::<String>()
            );
        }
        answer["value"].clone()
    }

    async fn session_call(&self, method: &str, path: &str, body: Value) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
            .await
    }

    pub async fn goto(&self, url: &str) {
        self.session_call("POST", "/url", json!({ "url": url }))
            .await;
    }

    /// Resizes the window (a phone: 390 × 844).
    pub async fn resize(&self, width: u32, height: u32) {
        self.session_call(
            "POST",
            "/window/rect",
            json!({ "width": width, "height": height }),
        )
        .await;
    }

    /// The first element `css` selects, waiting up to 15 s for it.
    pub async fn wait_for(&self, css: &str) -> String {
        let started = Instant::now();
        loop {
            let found = self
                .session_call(
                    "POST",
                    "/elements",
                    json!({ "using": "css selector", "value": css }),
                )
                .await;
            if let Some(id) = found[0][ELEMENT].as_str() {
                return id.to_owned();
            }
            if started.elapsed() > Duration::from_secs(15) {
                let page = self.script("return document.body.innerText").await;
                panic!("nothing matches `{css}` after 15 s; the page shows:\n{page}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The visible text of the first element `css` selects (waiting for it).
    pub async fn text(&self, css: &str) -> String {
        let id = self.wait_for(css).await;
        self.session_call("GET", &format!("/element/{id}/text"), Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.wait_for(css).await;
        self.session_call(
            "POST",
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    pub async fn click(&self, css: &str) {
        let id = self.wait_for(css).await;
        self.session_call("POST", &format!("/element/{id}/click"), json!({}))
            .await;
    }

    /// Runs `body` (a function body: `return …`) in the page.
    pub async fn script(&self, body: &str) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            json!({ "script": body, "args": [] }),
        )
        .await
    }

    /// Saves a PNG of the window to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let png = self.session_call("GET", "/screenshot", Value::Null).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("base64 PNG"))
            .unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(path, bytes).unwrap();
    }

    /// Ends the session (chromedriver stops when the browser is dropped).
    pub async fn quit(self) {
        let path = format!("/session/{}", self.session);
        let _ = exchange(self.addr, "DELETE", &path, "").await;
    }
}

/// One HTTP/1.1 request to chromedriver, which keeps connections open: the answer is read
/// up to its `Content-Length`.
async fn exchange(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut buf).await.expect("receive");
        raw.extend_from_slice(&buf[..n]);
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).into_owned();
            let length = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            let body = &raw[end + 4..];
            if body.len() >= length || n == 0 {
                let status = head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                return (status, String::from_utf8_lossy(body).into_owned());
            }
        }
        assert!(n > 0, "chromedriver closed the connection early");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
