package main

import (
	"math"
	"slices"
)

// stat summarises one series of measurements.
type stat struct {
	N      int       `json:"n"`
	Median float64   `json:"median"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	All    []float64 `json:"all,omitempty"`
}

func summarize(xs []float64) stat {
	if len(xs) == 0 {
		return stat{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stat{N: len(s), Median: m, Min: s[0], Max: s[len(s)-1], All: xs}
}

// one is a stat of a single value (memory figures are read once).
func one(x float64) stat { return stat{N: 1, Median: x, Min: x, Max: x, All: []float64{x}} }

// powerFit returns the exponent b of y = a·x^b, by least squares on logs.
func powerFit(xs, ys []float64) float64 {
	n := float64(len(xs))
	var sx, sy, sxx, sxy float64
	for i := range xs {
		lx, ly := math.Log(xs[i]), math.Log(ys[i])
		sx += lx
		sy += ly
		sxx += lx * lx
		sxy += lx * ly
	}
	return (n*sxy - sx*sy) / (n*sxx - sx*sx)
}
