//! The pause program: what the pause process runs once its setup is done (`sandbox::pause`).
//!
//! Not a module of the crate: `build.rs` compiles this file alone with `$RUSTC` into a static,
//! position-independent executable with no dynamic relocation, no libc and no heap, and
//! `sandbox::pause` embeds it (`include_bytes!`) and executes it from a sealed memfd. A fork
//! of peapod kept a private copy of the whole binary's relocated data (~230 kB per pod); this
//! program's image is a few pages and its stack one.
//!
//! What it does is what the Kubernetes pause container does: nothing until SIGTERM or SIGINT,
//! which end it with exit code 0. The forked setup leaves SIGCHLD ignored (the kernel then
//! reaps the orphans of a shared pid namespace, of which this is pid 1) and SIGTERM/SIGINT
//! blocked, so that one sent during the exec stays pending; this program waits for them with
//! rt_sigtimedwait(2), which also works as pid 1 of a pid namespace (a blocked signal is queued
//! even where its default action would be ignored).
#![no_std]
#![no_main]

const SIGINT: usize = 2;
const SIGTERM: usize = 15;
const SIGCHLD: usize = 17;
const SIG_IGN: usize = 1;
const SIG_BLOCK: usize = 0;
const PR_SET_NAME: usize = 15;
/// The kernel's sigset_t is 64 bits on every Linux architecture this is built for.
const SIGSET_SIZE: usize = 8;

#[cfg(target_arch = "x86_64")]
mod sys {
    pub const RT_SIGACTION: usize = 13;
    pub const RT_SIGPROCMASK: usize = 14;
    pub const PRCTL: usize = 157;
    pub const RT_SIGTIMEDWAIT: usize = 128;
    pub const EXIT_GROUP: usize = 231;

    /// SAFETY: the caller passes arguments valid for syscall `n`.
    pub unsafe fn call4(n: usize, a: usize, b: usize, c: usize, d: usize) -> isize {
        let ret: isize;
        core::arch::asm!(
            "syscall",
            inlateout("rax") n as isize => ret,
            in("rdi") a, in("rsi") b, in("rdx") c, in("r10") d,
            lateout("rcx") _, lateout("r11") _,
            options(nostack)
        );
        ret
    }

    core::arch::global_asm!(
        ".globl _start",
        "_start:",
        "xor ebp, ebp",
        "and rsp, -16",
        "call {main}",
        "ud2",
        main = sym super::main,
    );
}

#[cfg(target_arch = "aarch64")]
mod sys {
    pub const RT_SIGACTION: usize = 134;
    pub const RT_SIGPROCMASK: usize = 135;
    pub const PRCTL: usize = 167;
    pub const RT_SIGTIMEDWAIT: usize = 137;
    pub const EXIT_GROUP: usize = 94;

    /// SAFETY: the caller passes arguments valid for syscall `n`.
    pub unsafe fn call4(n: usize, a: usize, b: usize, c: usize, d: usize) -> isize {
        let ret: isize;
        core::arch::asm!(
            "svc 0",
            inlateout("x0") a as isize => ret,
            in("x1") b, in("x2") c, in("x3") d, in("x8") n,
            options(nostack)
        );
        ret
    }

    core::arch::global_asm!(
        ".globl _start",
        "_start:",
        "mov x29, xzr",
        "mov x30, xzr",
        "bl {main}",
        "udf 0",
        main = sym super::main,
    );
}

fn exit(code: usize) -> ! {
    // SAFETY: exit_group takes an integer and does not return.
    unsafe { sys::call4(sys::EXIT_GROUP, code, 0, 0, 0) };
    loop {}
}

/// The kernel's struct sigaction (handler, flags, restorer, mask) with SIG_IGN.
#[repr(C)]
struct SigAction {
    handler: usize,
    flags: usize,
    restorer: usize,
    mask: u64,
}

extern "C" fn main() -> ! {
    let ignore = SigAction {
        handler: SIG_IGN,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    let wanted: u64 = (1 << (SIGTERM - 1)) | (1 << (SIGINT - 1));
    // SAFETY: each call gets pointers to live locals of the sizes the kernel reads.
    unsafe {
        // exec named us after the memfd: the name `ps` shows for a pause process.
        sys::call4(
            sys::PRCTL,
            PR_SET_NAME,
            c"peapod-pause".as_ptr() as usize,
            0,
            0,
        );
        // Already ignored by the setup (exec keeps an ignored signal ignored): said again.
        sys::call4(
            sys::RT_SIGACTION,
            SIGCHLD,
            &ignore as *const SigAction as usize,
            0,
            SIGSET_SIZE,
        );
        sys::call4(
            sys::RT_SIGPROCMASK,
            SIG_BLOCK,
            &wanted as *const u64 as usize,
            0,
            SIGSET_SIZE,
        );
        loop {
            let sig = sys::call4(
                sys::RT_SIGTIMEDWAIT,
                &wanted as *const u64 as usize,
                0,
                0,
                SIGSET_SIZE,
            );
            if sig == SIGTERM as isize || sig == SIGINT as isize {
                exit(0);
            }
        }
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    exit(2)
}
