//! A small web service: answers every request on $PORT (default 8080) with
//! a greeting and the path it was asked for. Standard library only.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

fn main() -> std::io::Result<()> {
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".into());
    let listener = TcpListener::bind(("0.0.0.0", port.parse::<u16>().unwrap_or(8080)))?;
    println!("listening on :{port}");
    for stream in listener.incoming() {
        let mut stream = stream?;
        let mut request = String::new();
        BufReader::new(&stream).read_line(&mut request)?;
        let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
        let body = format!("hello from strata's rust-app: {path}\n");
        write!(
            stream,
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
    }
    Ok(())
}
