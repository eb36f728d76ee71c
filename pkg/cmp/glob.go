package cmp

import (
	"fmt"
	"regexp"
	"strings"
)

// globSet matches slash-separated paths relative to the app dir. A pattern without "/"
// matches a file's base name at any depth (like .gitignore); one with "/" matches the whole
// relative path; "**" spans directories, "*" and "?" stay within one.
type globSet []*regexp.Regexp

// parseGlobs reads a comma- or newline-separated pattern list (the form an ArgoCD env value
// or plugin parameter carries).
func parseGlobs(list string) (globSet, error) {
	var set globSet
	for _, p := range strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == '\n' }) {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		re, err := globRegexp(p)
		if err != nil {
			return nil, fmt.Errorf("glob %q: %w", p, err)
		}
		set = append(set, re)
	}
	return set, nil
}

func globRegexp(p string) (*regexp.Regexp, error) {
	p = strings.TrimPrefix(p, "./")
	var b strings.Builder
	b.WriteString("^")
	if !strings.Contains(p, "/") {
		b.WriteString("(?:.*/)?")
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case strings.HasPrefix(p[i:], "**/"):
			b.WriteString("(?:.*/)?")
			i += 2
		case strings.HasPrefix(p[i:], "**"):
			b.WriteString(".*")
			i++
		case c == '*':
			b.WriteString("[^/]*")
		case c == '?':
			b.WriteString("[^/]")
		case c == '[':
			j := strings.IndexByte(p[i:], ']')
			if j < 0 {
				return nil, fmt.Errorf("unterminated [")
			}
			b.WriteString(p[i : i+j+1])
			i += j
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

func (s globSet) match(rel string) bool {
	for _, re := range s {
		if re.MatchString(rel) {
			return true
		}
	}
	return false
}
