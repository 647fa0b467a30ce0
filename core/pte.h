/* x86-64 page-table entry layout and the address arithmetic of the walker.
 * Levels are numbered from the leaf up: level 0 holds 4 KiB entries, level 1
 * 2 MiB, level 2 1 GiB, level 3 512 GiB (the PML4), level 4 the PML5. A table
 * "at level k" is an array of 512 level-k entries. */
#ifndef KVMPT_PTE_H
#define KVMPT_PTE_H

#include <stdbool.h>
#include <stdint.h>

#include "pt.h" /* PT_MAX_LEVELS */

#define PT_PAGE_SHIFT 12
#define PT_PAGE_SIZE  (1ull << PT_PAGE_SHIFT)
#define PT_ENTRIES    512

enum { PT_LEVEL_4K = 0, PT_LEVEL_2M = 1, PT_LEVEL_1G = 2, PT_LEVEL_512G = 3 };

#define PTE_P        (1ull << 0)
#define PTE_RW       (1ull << 1)
#define PTE_US       (1ull << 2)
#define PTE_PWT      (1ull << 3)
#define PTE_PCD      (1ull << 4)
#define PTE_A        (1ull << 5)
#define PTE_D        (1ull << 6)
#define PTE_PS       (1ull << 7)   /* huge leaf, levels 1 and 2 */
#define PTE_PAT_4K   (1ull << 7)   /* PAT bit of a 4 KiB leaf */
#define PTE_G        (1ull << 8)
#define PTE_PAT_HUGE (1ull << 12)  /* PAT bit of a 2 MiB / 1 GiB leaf */
#define PTE_NX       (1ull << 63)
#define PTE_ADDR_MASK 0x000ffffffffff000ull /* bits 12..51 */

/* Bits the CPU writes behind our back; never part of a translation. */
#define PTE_HW_BITS (PTE_A | PTE_D)

/* log2 of the size an entry at `level` maps. */
static inline unsigned pt_level_shift(int level) { return PT_PAGE_SHIFT + 9u * (unsigned)level; }
static inline uint64_t pt_level_size(int level) { return 1ull << pt_level_shift(level); }

/* Index of `addr` in a table at `level`. */
static inline unsigned pt_index(uint64_t addr, int level)
{
	return (unsigned)(addr >> pt_level_shift(level)) & (PT_ENTRIES - 1);
}

/* End of the level-`level` entry that holds addr, clipped to end
 * (addresses here are linear offsets below 2^57, so nothing wraps). */
static inline uint64_t pt_addr_end(uint64_t addr, uint64_t end, int level)
{
	uint64_t next = (addr | (pt_level_size(level) - 1)) + 1;
	return next < end ? next : end;
}

static inline bool pte_present(uint64_t pte) { return pte & PTE_P; }

/* A present entry is a leaf at level 0 always, and at higher levels with PS. */
static inline bool pte_is_leaf(uint64_t pte, int level)
{
	return pte_present(pte) && (level == PT_LEVEL_4K || (pte & PTE_PS));
}

static inline bool pte_is_table(uint64_t pte, int level)
{
	return pte_present(pte) && level > PT_LEVEL_4K && !(pte & PTE_PS);
}

/* Physical address an entry holds (child table or leaf frame). */
static inline uint64_t pte_addr(uint64_t pte, int level)
{
	uint64_t mask = PTE_ADDR_MASK;
	if (level > PT_LEVEL_4K && (pte & PTE_PS))
		mask &= ~(pt_level_size(level) - 1);
	return pte & mask;
}

#endif
