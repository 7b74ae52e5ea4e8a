"""Layer 1, data: clips in, tensors out. Media decoding (decord, PyAV, the Kaldi fbank), container inspection and clip
checks with their reports, manifests and in-memory datasets, the feature cache, streaming from disk, the kit's
synthetic clips, and importers for the public datasets. Imports only `mavil_lite.distributed` from the kit."""
