//! Test guest: a WAGI program, as Spin's `executor = { type = "wagi" }`
//! runs it: request metadata in the environment, the body on stdin, a CGI
//! response (headers, blank line, body) on stdout. What it does depends on
//! `PATH_INFO`.

use std::io::{Read, Write};

fn main() {
    let path = std::env::var("PATH_INFO").unwrap_or_default();
    let mut out = std::io::stdout().lock();
    match path.as_str() {
        "/env" => {
            let mut vars: Vec<(String, String)> = std::env::vars().collect();
            vars.sort();
            let _ = write!(out, "Content-Type: text/plain\n\n");
            for (k, v) in vars {
                let _ = writeln!(out, "{k}={v}");
            }
        }
        "/args" => {
            let args: Vec<String> = std::env::args().collect();
            let _ = write!(out, "Content-Type: text/plain\r\n\r\n{args:?}");
        }
        "/echo" => {
            let mut body = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut body);
            let _ = write!(
                out,
                "Content-Type: application/octet-stream\nX-Echo-Length: {}\n\n",
                body.len()
            );
            let _ = out.write_all(&body);
        }
        "/status" => {
            let _ = write!(
                out,
                "Status: 404 Not Found\nContent-Type: text/plain\n\nno such thing"
            );
        }
        "/redirect" => {
            let _ = write!(out, "Location: /elsewhere\n\n");
        }
        "/no-headers" => {
            let _ = write!(out, "just a body, no headers");
        }
        "/file" => {
            let text =
                std::fs::read_to_string("/data/greeting.txt").unwrap_or_else(|e| e.to_string());
            let _ = write!(out, "Content-Type: text/plain\n\n{text}");
        }
        "/exit" => {
            eprintln!("wagi guest: exiting with 3");
            std::process::exit(3);
        }
        "/loop" => loop {
            std::hint::black_box(0);
        },
        _ => {
            let _ = write!(
                out,
                "Content-Type: text/plain\n\nHello from {}\n",
                std::env::var("SERVER_SOFTWARE").unwrap_or_default()
            );
        }
    }
}
