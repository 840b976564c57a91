#include <stdio.h>
#include <time.h>
int main(){ struct timespec a,b; volatile long sink; long x=1; 
 for(int rep=0;rep<5;rep++){ clock_gettime(CLOCK_THREAD_CPUTIME_ID,&a);
 long n=1000000000L; long y=x;
 __asm__ volatile("" : "+r"(y));
 for(long i=0;i<n;i++){ __asm__ volatile("add $1, %0" : "+r"(y)); }
 clock_gettime(CLOCK_THREAD_CPUTIME_ID,&b); sink=y;
 double s=(b.tv_sec-a.tv_sec)+(b.tv_nsec-a.tv_nsec)*1e-9; printf("%.3f GHz (loop of 1 add + inc + cmp/jmp per iter)\n", n/s/1e9);} return 0;}
