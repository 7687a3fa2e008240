# bench/compare.sh's plot: nfs41d / Ganesha ops/s per workload and phase.
# gnuplot -e "datafile='ratios.dat'; outfile='x.png'" compare.gp
set terminal pngcairo size 1600,560 font ",9"
set output outfile
set title "nfs41d / NFS-Ganesha (VFS), ops/s ratio, same run, log scale (> 1: nfs41d faster; dotted red: 1.5×)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set xtics rotate by -35 left
set ylabel "ratio"
# Log scale: the ratios span 0.02-60 and what matters is the side of 1.
set logscale y
set yrange [0.01:100]
set rmargin 10
set grid ytics
set key top right
set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2 lw 2 lc rgb "black"
set arrow from graph 0, first 1.5 to graph 1, first 1.5 nohead dt 3 lc rgb "red"
# Columns 4 and 5 (over Ganesha on a sync,dirsync mount) are 0 without it.
plot datafile using 2:xtic(1) title "SQLite / Ganesha", '' using 3 title "PostgreSQL / Ganesha", \
     '' using 4 title "SQLite / Ganesha sync,dirsync", '' using 5 title "PostgreSQL / Ganesha sync,dirsync"
