package pid1

import (
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/metainit/metainit/internal/mountinfo"
)

// RemoveCgroupTree removes /<parent> and everything below it from every
// cgroup hierarchy mounted here (one on a cgroup2 machine; one per
// controller, plus the unified one, on a v1 or hybrid host). It is how an
// instance leaves no cgroups behind. Busy cgroups are left and reported.
func RemoveCgroupTree(parent string, logf func(string, ...any)) {
	if parent == "" || strings.Contains(parent, "..") {
		return
	}
	for _, mi := range mountinfo.Read() {
		if mi.FSType != "cgroup" && mi.FSType != "cgroup2" {
			continue
		}
		top := filepath.Join(mi.Target, parent)
		var dirs []string
		_ = filepath.WalkDir(top, func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		// Deepest first.
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, d := range dirs {
			if err := os.Remove(d); err != nil && !os.IsNotExist(err) {
				logf("cgroup %s not removed: %v", d, err)
			}
		}
	}
}
