/*
 * Wine 8 (Debian 12's wine64) ships no bcryptprimitives.dll, and Rust's standard library
 * (1.78 and later) imports ProcessPrng from it for its random numbers (HashMap seeds), so an
 * addon built by Rust does not even load there ("Module not found"). Real Windows 10 and later
 * have it, and newer Wine releases provide it as well.
 *
 * This is the smallest stand-in: the one function, with its documented contract (fill the
 * buffer with random bytes, never fail), on top of BCryptGenRandom, which Wine 8 has. It is
 * built and copied into the Wine prefix by scripts/windows-lane.sh; nothing else uses it.
 */
#include <windows.h>
#include <bcrypt.h>

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (BCryptGenRandom(NULL, data, chunk, BCRYPT_USE_SYSTEM_PREFERRED_RNG) != 0)
            ExitProcess(0xC0000001); /* ProcessPrng never returns failure; neither do we. */
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
