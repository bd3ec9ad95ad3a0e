package main

import (
	"math"
	"sort"
	"time"
)

// summaryStats summarises a set of durations, in milliseconds.
type summaryStats struct {
	N       int       `json:"n"`
	P50     float64   `json:"p50_ms"`
	P99     float64   `json:"p99_ms"`
	Min     float64   `json:"min_ms"`
	Max     float64   `json:"max_ms"`
	Mean    float64   `json:"mean_ms"`
	Samples []float64 `json:"samples_ms"`
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

// percentile is the nearest-rank percentile of sorted xs (0 < p <= 1).
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return sorted[i]
}

func summarize(ds []time.Duration) summaryStats {
	s := summaryStats{N: len(ds), Samples: make([]float64, 0, len(ds))}
	for _, d := range ds {
		s.Samples = append(s.Samples, ms(d))
	}
	if len(ds) == 0 {
		return s
	}
	sorted := append([]float64(nil), s.Samples...)
	sort.Float64s(sorted)
	var sum float64
	for _, x := range sorted {
		sum += x
	}
	s.P50, s.P99 = percentile(sorted, 0.50), percentile(sorted, 0.99)
	s.Min, s.Max = sorted[0], sorted[len(sorted)-1]
	s.Mean = math.Round(sum/float64(len(sorted))*1e3) / 1e3
	return s
}
