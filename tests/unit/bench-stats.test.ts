// bench/lib: statistics and the SVG chart writer.
import t from 'tap';
import { median, percentile, summarize } from '../../bench/lib/stats.js';
import { niceCeil, renderChart } from '../../bench/lib/svg.js';

t.test('median, percentile and summarize', async (t) => {
  t.equal(median([1, 2, 3]), 2);
  t.equal(median([1, 2, 3, 4]), 2.5);
  t.equal(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90), 9, 'nearest rank');
  t.equal(percentile([5], 90), 5);
  t.throws(() => percentile([], 50), RangeError);
  t.throws(() => percentile([1], 101), RangeError);
  const s = summarize([3, 1, 2]);
  t.same({ median: s.median, min: s.min, max: s.max, mean: s.mean }, { median: 2, min: 1, max: 3, mean: 2 });
  t.same(s.runs, [3, 1, 2], 'runs kept in order');
});

t.test('the chart is well-formed SVG with one row per series', async (t) => {
  t.equal(niceCeil(7.3), 10);
  t.equal(niceCeil(0.13), 0.2);
  const svg = renderChart({
    title: 'a <test>',
    unit: 'ms',
    series: [
      { label: 'one', summary: summarize([1, 2, 3]), color: '#123456', goal: { value: 2, label: 'g' } },
      { label: 'two', summary: summarize([4, 5]), color: '#654321' },
    ],
  });
  t.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  t.match(svg, /<\/svg>\n$/);
  t.match(svg, /a &lt;test&gt;/, 'text is escaped');
  t.equal((svg.match(/<circle /g) ?? []).length, 5, 'a dot per run');
  t.equal((svg.match(/stroke-dasharray/g) ?? []).length, 1, 'one goal line');
});
