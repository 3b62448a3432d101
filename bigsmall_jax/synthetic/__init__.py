"""The synthetic physiological video generator: waveforms, appearance, scene, rendering and export."""
