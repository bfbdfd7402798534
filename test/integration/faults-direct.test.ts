/**
 * The fault suites (test/helpers/fault-suites.ts) with the pipeline's readers and writers on the
 * embedded emulator's direct path, its faults injected by the direct relay.
 */
import { faultSuites } from '../helpers/fault-suites';

faultSuites('direct');
