//! Pseudo-terminal pairs: the stand-in for a serial cable in the tests and the demo.
//!
//! The master end plays the device (a scanner writing codes, the simulated face module); the
//! slave path is what the daemon opens, by path, exactly as it opens `/dev/ttyACM0`. Nothing here
//! knows about scanners or frames.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use super::tty::FdStream;

/// One pseudo-terminal pair in raw mode.
pub struct Pty {
    /// The "device" end.
    pub master: FdStream,
    /// Path of the "host" end, e.g. `/dev/pts/3`.
    pub slave_path: PathBuf,
    /// Held open so the master does not read EIO before the host side opens the slave.
    _slave: OwnedFd,
}

impl Pty {
    /// The master stream, the slave's path, and the descriptor that keeps the slave alive
    /// (drop it only when the host side no longer needs the pair).
    pub fn into_parts(self) -> (FdStream, PathBuf, OwnedFd) {
        (self.master, self.slave_path, self._slave)
    }
}

/// Opens a pty pair, both ends raw (no echo, no line editing, no CR/LF translation).
/// Must be called inside a tokio runtime (the master is registered with the reactor).
pub fn open_pty() -> io::Result<Pty> {
    let mut master: RawFd = -1;
    let mut slave: RawFd = -1;
    // SAFETY: openpty writes two descriptors into the provided integers; the name, termios and
    // winsize pointers may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openpty succeeded, so both are fresh descriptors that we now own.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    set_cloexec(master.as_raw_fd())?;
    set_cloexec(slave.as_raw_fd())?;
    make_raw(slave.as_raw_fd())?;
    let slave_path = tty_name(slave.as_raw_fd())?;
    Ok(Pty {
        master: FdStream::new(master)?,
        slave_path,
        _slave: slave,
    })
}

/// Opens a tty by path as a raw, non-blocking stream, without serial-port configuration. Used by
/// tests and the demo for the host side of a pty; real ports go through `serial::open_port`.
pub fn open_tty_raw(path: &Path) -> io::Result<FdStream> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    let fd = OwnedFd::from(file);
    make_raw(fd.as_raw_fd())?;
    FdStream::new(fd)
}

fn set_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub(crate) fn make_raw(fd: RawFd) -> io::Result<()> {
    // SAFETY: termios is plain old data; tcgetattr fills it before we read it.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor and a valid pointer to a termios.
    if unsafe { libc::tcgetattr(fd, &mut t) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: t is a valid termios.
    unsafe { libc::cfmakeraw(&mut t) };
    // SAFETY: as for tcgetattr.
    if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &t) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn tty_name(fd: RawFd) -> io::Result<PathBuf> {
    let mut buf = [0 as libc::c_char; 128];
    // SAFETY: buffer and its length are valid; ttyname_r NUL-terminates on success.
    let rc = unsafe { libc::ttyname_r(fd, buf.as_mut_ptr(), buf.len()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    // SAFETY: NUL-terminated by ttyname_r.
    let name = unsafe { CStr::from_ptr(buf.as_ptr()) };
    Ok(PathBuf::from(name.to_string_lossy().into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn pty_pair_carries_bytes_both_ways_unchanged() {
        let mut pty = open_pty().unwrap();
        let mut host = open_tty_raw(&pty.slave_path).unwrap();
        // CR and LF must pass untranslated: the scanner suffix modes depend on it.
        pty.master.write_all(b"12\r\n\x03").await.unwrap();
        let mut buf = [0u8; 5];
        host.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"12\r\n\x03");
        host.write_all(b"\xa5\x5a").await.unwrap();
        let mut back = [0u8; 2];
        pty.master.read_exact(&mut back).await.unwrap();
        assert_eq!(back, [0xa5, 0x5a]);
    }
}
