/**
 * The operating system's id of the calling thread (Linux), so a profile of the process's threads
 * (/proc/<pid>/task/<tid>) can say which one is the emulator and which ones run which function:
 * Node names every thread "node".
 */
import { readlinkSync } from 'node:fs';

/** This thread's OS id, or undefined where /proc/thread-self does not exist. */
export function osThreadId(): number | undefined {
  try {
    const id = Number(readlinkSync('/proc/thread-self').split('/').pop());
    return Number.isInteger(id) ? id : undefined;
  } catch {
    return undefined;
  }
}
