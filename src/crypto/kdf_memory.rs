//! The key derivation's memory, on huge pages where the kernel gives them.
//!
//! argon2id at the default 256 MiB touches 65,536 pages of 4 KiB the first time it
//! writes them: one page fault each, and argon2's random reads miss the TLB. Mapped
//! with transparent huge pages asked for (`MADV_HUGEPAGE`; Linux's default THP mode
//! only gives them to regions that ask), the same memory is 128 pages of 2 MiB. The
//! blocks hold nothing but zeros when mapped, so argon2 computes the same keys.
#![allow(unsafe_code)]

use argon2::Block;
use rustix::mm::{madvise, mmap_anonymous, munmap, Advice, MapFlags, ProtFlags};
use std::ffi::c_void;

/// Huge-page size on x86-64 and aarch64 with 4 KiB base pages.
const HUGE_PAGE: usize = 2 << 20;

/// Zeroed, writable memory for `count` argon2 blocks, unmapped on drop.
pub struct KdfMemory {
    mapping: *mut c_void,
    mapped: usize,
    blocks: *mut Block,
    count: usize,
}

impl KdfMemory {
    /// `None` when the kernel refuses the mapping: the caller lets argon2 allocate.
    pub fn new(count: usize) -> Option<KdfMemory> {
        let bytes = count.checked_mul(size_of::<Block>())?;
        // One huge page more, so the blocks can start on a huge-page boundary.
        let mapped = bytes.checked_add(HUGE_PAGE)?;
        // SAFETY: a fresh private anonymous mapping; nothing else refers to it.
        let mapping = unsafe {
            mmap_anonymous(
                std::ptr::null_mut(),
                mapped,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE,
            )
        }
        .ok()?;
        let skip = (HUGE_PAGE - mapping as usize % HUGE_PAGE) % HUGE_PAGE;
        // SAFETY: `skip + bytes <= mapped`, inside the mapping made above.
        let blocks = unsafe { mapping.cast::<u8>().add(skip) }.cast::<Block>();
        // Only advice: without huge pages the memory is still correct, just slower.
        // SAFETY: the range lies inside the mapping; MADV_HUGEPAGE changes no content.
        let _ = unsafe { madvise(blocks.cast(), bytes, Advice::LinuxHugepage) };
        Some(KdfMemory {
            mapping,
            mapped,
            blocks,
            count,
        })
    }
}

impl AsMut<[Block]> for KdfMemory {
    fn as_mut(&mut self) -> &mut [Block] {
        // SAFETY: `count` blocks, page-aligned (so aligned for `Block`), zero-initialised
        // by the kernel (all-zero is a valid `Block`), owned by `self` alone.
        unsafe { std::slice::from_raw_parts_mut(self.blocks, self.count) }
    }
}

impl Drop for KdfMemory {
    fn drop(&mut self) {
        // Unmapped pages go back to the kernel, which zeroes them before any reuse.
        // SAFETY: the whole mapping made in `new`; no slice of it outlives `self`.
        let _ = unsafe { munmap(self.mapping, self.mapped) };
    }
}
