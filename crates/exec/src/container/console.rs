//! runc's console socket: how a detached container with a terminal hands
//! the pseudo-terminal's master to its monitor. runc connects to a unix
//! socket the monitor listens on and sends the master fd as `SCM_RIGHTS`
//! (runc's `--console-socket`), then exits once the container runs.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Child;
use std::time::Duration;

use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};

use crate::{Error, Result};

/// Listens on `path` (replacing a socket a killed monitor left).
pub(crate) fn listen(path: &Path) -> Result<UnixListener> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path).map_err(|e| Error::io("listening on", path, e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::io("listening on", path, e))?;
    Ok(listener)
}

/// The master runc sends on `listener`; `None` when `runc` exited without
/// connecting (its status and log say why).
pub(crate) fn receive(listener: &UnixListener, runc: &mut Child) -> Result<Option<OwnedFd>> {
    let io_err = |e: io::Error| Error::io("receiving the console from", "runc", e);
    let stream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if runc.try_wait().map_err(io_err)?.is_some() {
                    return Ok(None);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(io_err(e)),
        }
    };
    stream.set_nonblocking(false).map_err(io_err)?;
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    // runc sends the terminal's name as the message's data.
    let mut name = [0u8; 4096];
    rustix::net::recvmsg(
        &stream,
        &mut [io::IoSliceMut::new(&mut name)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .map_err(|e| io_err(e.into()))?;
    let mut master = None;
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = message {
            for fd in fds {
                master.get_or_insert(fd);
            }
        }
    }
    master
        .map(Some)
        .ok_or_else(|| io_err(io::Error::other("runc sent no terminal")))
}
