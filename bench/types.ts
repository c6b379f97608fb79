/** One line of docs/BENCHMARKS.md: our median against a real peer's, measured in the same run. */
export interface BenchRow {
  name: string;
  /** What was processed, e.g. "phantom 256×256×160, 9 stacks, 315 instances". */
  input: string;
  ours: number;
  peer: number;
  peerName: string;
  /** Unit of ours/peer, e.g. "s" or "instances/s". */
  unit: string;
  /** ours/peer for rates, peer/ours for times: always "how many times the peer's speed we reach". */
  ratio: number;
  /** The target for the ratio, written as text (e.g. "≥ 0.67 (at most 1.5× dcm2niix's time)"). */
  target?: string;
  met?: boolean;
  higherIsBetter: boolean;
  oursPeakRssMb?: number;
  peerPeakRssMb?: number;
  notes?: string;
}

export interface BenchOptions {
  quick: boolean;
}
