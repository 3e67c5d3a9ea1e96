use std::io::Cursor;

use super::super::http_request::request_target;
use super::*;
use crate::probe::KUBE_VERSION;

fn get(path: &str, headers: &[(&str, &str)]) -> HttpGet {
    HttpGet {
        scheme: "http".into(),
        host: "10.88.0.5".into(),
        port: 8080,
        path: path.into(),
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    }
}

fn head(g: &HttpGet, client: Client) -> String {
    let headers = build_headers(&g.headers, client);
    let host = first(&headers, "Host").filter(|h| !h.is_empty());
    String::from_utf8(request_head(&Url::of(g), host, &headers, client)).unwrap()
}

#[test]
fn probe_request_bytes_are_go_net_https() {
    assert_eq!(
        head(&get("/healthz", &[]), Client::Probe),
        format!(
            "GET /healthz HTTP/1.1\r\nHost: 10.88.0.5:8080\r\nUser-Agent: kube-probe/{KUBE_VERSION}\r\n\
             Accept: */*\r\nConnection: close\r\n\r\n"
        )
    );
    let custom = get(
        "/ready?full=1",
        &[
            ("x-custom", "a"),
            ("Host", "example.com"),
            ("User-Agent", "mine/1"),
            ("X-Custom", "b"),
            ("accept", "application/json"),
        ],
    );
    assert_eq!(
        head(&custom, Client::Probe),
        "GET /ready?full=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: mine/1\r\n\
         Accept: application/json\r\nX-Custom: a\r\nX-Custom: b\r\nConnection: close\r\n\r\n"
    );
    // An empty Accept is dropped; an empty User-Agent sends none.
    let bare = get("/", &[("Accept", ""), ("User-Agent", "")]);
    assert_eq!(
        head(&bare, Client::Probe),
        "GET / HTTP/1.1\r\nHost: 10.88.0.5:8080\r\nConnection: close\r\n\r\n"
    );
}

#[test]
fn hook_requests_use_the_lifecycle_agent_and_gzip() {
    assert_eq!(
        head(&get("/stop", &[]), Client::Hook),
        format!(
            "GET /stop HTTP/1.1\r\nHost: 10.88.0.5:8080\r\nUser-Agent: kube-lifecycle/{KUBE_VERSION}\r\n\
             Accept: */*\r\nAccept-Encoding: gzip\r\n\r\n"
        )
    );
}

#[test]
fn names_and_paths_as_go_writes_them() {
    assert_eq!(canonical_key("x-custom-header"), "X-Custom-Header");
    assert_eq!(canonical_key("USER-AGENT"), "User-Agent");
    assert_eq!(canonical_key("bad name"), "bad name");
    assert_eq!(request_target("/a b/ü"), "/a%20b/%C3%BC");
    assert_eq!(request_target("healthz#frag"), "/healthz");
    assert_eq!(request_target("/x%2Fy?q=a b"), "/x%2Fy?q=a b");
    assert_eq!(request_target("/100%"), "/100%25");
    let v6 = HttpGet {
        host: "fd00::5".into(),
        ..get("/", &[])
    };
    assert_eq!(Url::of(&v6).to_string(), "http://[fd00::5]:8080/");
}

#[test]
fn locations_resolve_against_the_request() {
    let base = Url::of(&get("/a/b?x=1", &[]));
    let to = |loc: &str| base.join(loc).unwrap().to_string();
    assert_eq!(to("/new"), "http://10.88.0.5:8080/new");
    assert_eq!(to("c"), "http://10.88.0.5:8080/a/c");
    assert_eq!(to("?y=2"), "http://10.88.0.5:8080/a/b?y=2");
    assert_eq!(to("https://10.88.0.5/s"), "https://10.88.0.5/s");
    assert_eq!(to("//other:81/p"), "http://other:81/p");
    let other = base.join("http://user:pw@[::1]:9/x").unwrap();
    assert_eq!((other.host.as_str(), other.port), ("::1", 9));
    assert_eq!(base.join("https://h/").unwrap().port, 443);
    assert!(base.join("ftp://h/").is_err());
}

#[test]
fn status_lines_and_errors() {
    assert_eq!(parse_status_line("HTTP/1.1 200 OK"), Ok(200));
    assert_eq!(parse_status_line("HTTP/1.0 503"), Ok(503));
    assert_eq!(
        parse_status_line("garbage"),
        Err(
            "net/http: HTTP/1.x transport connection broken: malformed HTTP response \"garbage\""
                .into()
        )
    );
    assert_eq!(
        parse_status_line("HTTP/1.1 2000 OK"),
        Err(
            "net/http: HTTP/1.x transport connection broken: malformed HTTP status code \"2000\""
                .into()
        )
    );
}

#[test]
fn bodies_chunked_sized_and_to_eof_stop_at_10_kib() {
    let mut chunked = Cursor::new(b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\n\r\n".to_vec());
    assert_eq!(read_body(&mut chunked, true, None).unwrap(), b"hello world");
    let mut sized = Cursor::new(b"abcdef".to_vec());
    assert_eq!(read_body(&mut sized, false, Some(3)).unwrap(), b"abc");
    let mut short = Cursor::new(b"ab".to_vec());
    assert_eq!(
        read_body(&mut short, false, Some(3)).unwrap_err().kind(),
        io::ErrorKind::UnexpectedEof
    );
    let big = vec![b'x'; 3 * MAX_OUTPUT];
    let mut eof = Cursor::new(big.clone());
    assert_eq!(read_body(&mut eof, false, None).unwrap().len(), MAX_OUTPUT);
    let mut big_chunk = format!("{:x}\r\n", big.len()).into_bytes();
    big_chunk.extend(&big);
    assert_eq!(
        read_body(&mut Cursor::new(big_chunk), true, None)
            .unwrap()
            .len(),
        MAX_OUTPUT
    );
    let mut lines = Cursor::new(b"a\r\nb\nc".to_vec());
    assert_eq!(read_line(&mut lines).unwrap().as_deref(), Some("a"));
    assert_eq!(read_line(&mut lines).unwrap().as_deref(), Some("b"));
    assert!(read_line(&mut lines).is_err(), "a line cut by EOF");
}
