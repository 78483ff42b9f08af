//! A small registry that follows the distribution spec v1.1, including the referrers API,
//! for the paths Debian's distribution 2.8 cannot test; it can also fail (HTTP 500) or stall
//! a number of requests. Loopback only, one connection at a time, bounded reads.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const MAX_HEADER: usize = 64 * 1024;
const MAX_BODY: usize = 64 * 1024 * 1024;
const INDEX: &str = "application/vnd.oci.image.index.v1+json";

#[derive(Default)]
pub struct State {
    blobs: HashMap<String, Vec<u8>>,
    /// `repo/reference` → (media type, bytes).
    manifests: HashMap<String, (String, Vec<u8>)>,
    uploads: HashMap<u32, Vec<u8>>,
    next_upload: u32,
    /// Answer this many requests with HTTP 500.
    pub fail: u32,
    /// Accept this many connections and never answer.
    pub stall: u32,
    /// Answer every request whose path contains this with HTTP 500 (a blob that cannot be
    /// had, to interrupt a pull midway).
    pub fail_path: Option<String>,
    /// `METHOD path` of every request served.
    pub log: Vec<String>,
}

pub struct FakeRegistry {
    pub port: u16,
    pub state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl FakeRegistry {
    pub fn start() -> FakeRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
        let port = listener.local_addr().expect("local address").port();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                let stalled = {
                    let mut s = st.lock().unwrap();
                    let stall = s.stall > 0;
                    s.stall = s.stall.saturating_sub(1);
                    stall
                };
                if stalled {
                    // Hold the connection open without a word until the client gives up.
                    std::thread::spawn(move || {
                        std::thread::sleep(Duration::from_secs(5));
                        drop(conn);
                    });
                    continue;
                }
                let _ = serve(conn, &st);
            }
        });
        FakeRegistry { port, state, stop }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn has_manifest(&self, repo_ref: &str) -> bool {
        self.state.lock().unwrap().manifests.contains_key(repo_ref)
    }

    pub fn requests(&self, prefix: &str) -> usize {
        self.state.lock().unwrap().log.iter().filter(|l| l.starts_with(prefix)).count()
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

struct Request {
    method: String,
    path: String,
    query: HashMap<String, String>,
    body: Vec<u8>,
    content_type: String,
}

fn read_request(conn: &TcpStream) -> std::io::Result<Request> {
    let mut r = BufReader::new(conn.try_clone()?);
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 || head.len() > MAX_HEADER {
            return Err(std::io::Error::other("bad request"));
        }
        if line == "\r\n" {
            break;
        }
        head.push(line.trim_end().to_string());
    }
    let first = head.first().cloned().unwrap_or_default();
    let mut parts = first.split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let header = |name: &str| {
        head.iter()
            .filter_map(|h| h.split_once(':'))
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
    };
    let len: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    if len > MAX_BODY {
        return Err(std::io::Error::other("body too large"));
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    let (path, q) = target.split_once('?').unwrap_or((&target, ""));
    let query = q
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace("%3A", ":").replace("%2F", "/")))
        .collect();
    Ok(Request {
        method,
        path: path.to_string(),
        query,
        body,
        content_type: header("content-type").unwrap_or_default(),
    })
}

fn respond(mut conn: &TcpStream, status: u16, headers: &[(&str, String)], body: &[u8], head: bool) {
    let mut out =
        format!("HTTP/1.1 {status} X\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let _ = conn.write_all(out.as_bytes());
    if !head {
        let _ = conn.write_all(body);
    }
}

fn upload_session(conn: &TcpStream, name: &str, id: u32) {
    respond(conn, 202, &[("Location", format!("/v2/{name}/blobs/uploads/{id}"))], b"", false);
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", crate::util::sha256_hex(bytes))
}

fn serve(conn: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    let req = read_request(&conn)?;
    let mut s = state.lock().unwrap();
    s.log.push(format!("{} {}", req.method, req.path));
    let fail_this = s.fail_path.as_ref().is_some_and(|f| req.path.contains(f.as_str()));
    if s.fail > 0 || fail_this {
        s.fail = s.fail.saturating_sub(u32::from(!fail_this));
        respond(
            &conn,
            500,
            &[],
            br#"{"errors":[{"code":"UNKNOWN","message":"injected failure"}]}"#,
            false,
        );
        return Ok(());
    }
    let head = req.method == "HEAD";
    let p = req.path.strip_prefix("/v2/").unwrap_or("");
    let not_found =
        |conn: &TcpStream| respond(conn, 404, &[], br#"{"errors":[{"code":"NOT_FOUND"}]}"#, head);
    if p.is_empty() {
        respond(&conn, 200, &[], b"{}", head);
    } else if let Some((name, rest)) = p.split_once("/blobs/uploads/") {
        let name = name.to_string();
        if rest.is_empty() && req.method == "POST" {
            let from = req.query.get("from").cloned().unwrap_or_default();
            if let Some(d) = req.query.get("mount")
                && let Some(b) = s.blobs.get(&format!("{from}/{d}")).cloned()
            {
                s.blobs.insert(format!("{name}/{d}"), b);
                respond(&conn, 201, &[("Location", format!("/v2/{name}/blobs/{d}"))], b"", false);
                return Ok(());
            }
            s.next_upload += 1;
            let id = s.next_upload;
            s.uploads.insert(id, Vec::new());
            upload_session(&conn, &name, id);
            return Ok(());
        }
        let id: u32 = rest.parse().unwrap_or(0);
        let Some(mut data) = s.uploads.remove(&id) else {
            not_found(&conn);
            return Ok(());
        };
        data.extend_from_slice(&req.body);
        match req.method.as_str() {
            "PATCH" => {
                s.uploads.insert(id, data);
                upload_session(&conn, &name, id);
            }
            "PUT" => {
                let d = sha256(&data);
                if req.query.get("digest") != Some(&d) {
                    respond(&conn, 400, &[], br#"{"errors":[{"code":"DIGEST_INVALID"}]}"#, false);
                } else {
                    s.blobs.insert(format!("{name}/{d}"), data);
                    respond(&conn, 201, &[("Docker-Content-Digest", d)], b"", false);
                }
            }
            _ => not_found(&conn),
        }
    } else if let Some((name, d)) = p.split_once("/blobs/") {
        match s.blobs.get(&format!("{name}/{d}")) {
            Some(b) => respond(&conn, 200, &[("Docker-Content-Digest", d.to_string())], b, head),
            None => not_found(&conn),
        }
    } else if let Some((name, r)) = p.split_once("/manifests/") {
        let key = format!("{name}/{r}");
        if req.method == "PUT" {
            let d = sha256(&req.body);
            let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
            let entry = (req.content_type.clone(), req.body.clone());
            s.manifests.insert(key, entry.clone());
            s.manifests.insert(format!("{name}/{d}"), entry);
            let mut headers = vec![("Docker-Content-Digest", d)];
            if let Some(subject) = v.pointer("/subject/digest").and_then(|x| x.as_str()) {
                headers.push(("OCI-Subject", subject.to_string()));
            }
            respond(&conn, 201, &headers, b"", false);
        } else {
            match s.manifests.get(&key) {
                Some((ct, b)) => respond(
                    &conn,
                    200,
                    &[("Content-Type", ct.clone()), ("Docker-Content-Digest", sha256(b))],
                    b,
                    head,
                ),
                None => not_found(&conn),
            }
        }
    } else if let Some((name, subject)) = p.split_once("/referrers/") {
        let prefix = format!("{name}/sha256:");
        let mut seen = std::collections::BTreeMap::new();
        for (k, (ct, b)) in &s.manifests {
            let v: serde_json::Value = serde_json::from_slice(b).unwrap_or_default();
            if k.starts_with(&prefix)
                && v.pointer("/subject/digest").and_then(|x| x.as_str()) == Some(subject)
            {
                let mut desc =
                    serde_json::json!({"mediaType": ct, "digest": sha256(b), "size": b.len()});
                desc["artifactType"] = v["artifactType"].clone();
                if let Some(a) = v.get("annotations") {
                    desc["annotations"] = a.clone();
                }
                seen.insert(sha256(b), desc);
            }
        }
        let manifests: Vec<_> = seen.into_values().collect();
        let body = serde_json::to_vec(
            &serde_json::json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests}),
        )
        .unwrap();
        respond(&conn, 200, &[("Content-Type", INDEX.to_string())], &body, head);
    } else {
        not_found(&conn);
    }
    Ok(())
}
