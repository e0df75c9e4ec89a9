//! A seccomp filter that makes io_uring_setup, io_uring_enter and io_uring_register fail with
//! EPERM, as the default profiles of Docker ≥ 25 and containerd 2.0 do, and `unshare` too (those
//! profiles allow it only with CAP_SYS_ADMIN, which a container lacks by default); installed in
//! a child before exec, so a test runs `gatewire` as it runs in a default container, without
//! Docker.

use std::os::unix::process::CommandExt;
use std::process::Command;

/// The refused calls, by this architecture's numbers.
const REFUSED: [u32; 4] = [
    libc::SYS_io_uring_setup as u32,
    libc::SYS_io_uring_enter as u32,
    libc::SYS_io_uring_register as u32,
    libc::SYS_unshare as u32,
];

const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const BPF_JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const BPF_RET_K: u16 = 0x06; // BPF_RET | BPF_K
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;

fn statement(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump_if(k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: BPF_JEQ_K,
        jt,
        jf,
        k,
    }
}

/// Runs `command` under the filter.
pub fn block_io_uring(command: &mut Command) -> &mut Command {
    let mut program = vec![statement(BPF_LD_W_ABS, 0)]; // seccomp_data.nr
    let calls = REFUSED.len() as u8;
    for (i, call) in REFUSED.iter().enumerate() {
        // Matched: jump to the refusal after the remaining checks and the allow.
        program.push(jump_if(*call, calls - i as u8, 0));
    }
    program.push(statement(BPF_RET_K, SECCOMP_RET_ALLOW));
    program.push(statement(BPF_RET_K, SECCOMP_RET_ERRNO | libc::EPERM as u32));
    // SAFETY: the closure runs in the child between fork and exec and only makes two prctl
    // calls on memory moved into it (async-signal-safe).
    unsafe {
        command.pre_exec(move || {
            let fprog = libc::sock_fprog {
                len: program.len() as u16,
                filter: program.as_ptr() as *mut libc::sock_filter,
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &fprog as *const libc::sock_fprog,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}
