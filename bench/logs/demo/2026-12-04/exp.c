/* demo experiments: BASE=file, STAGES="F1000,N1000,..." */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "del.h"
#include "del/io.h"
#define TRY(x) do { if ((x) != DEL_OK) { fprintf(stderr, "fail %s:%d %s\n", __FILE__, __LINE__, del_last_error()); exit(1);} } while (0)
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+1e-9*t.tv_nsec;}
static double envf(const char*k,double d){const char*v=getenv(k);return v?atof(v):d;}
static const float mean[1]={0.2860f},sd[1]={0.3530f};
static del_dataset *train,*test,*L,*U;
static double acc_of(del_model*m){del_trainer*t;double a;TRY(del_trainer_new_supervised(&t,m,L));TRY(del_trainer_set_normalize(t,mean,sd,1));TRY(del_trainer_evaluate(t,test,&a));del_trainer_free(t);return a;}
static void crop_flip(del_augment*a){TRY(del_augment_add_random_crop(a,28,28,2,0));TRY(del_augment_add_flip_h(a,0.5f));}
static int prog(int64_t s,int64_t n,float loss,void*u){(void)u;if(s%200==0||s==n){fprintf(stderr,"  step %lld/%lld loss %.3f\n",(long long)s,(long long)n,loss);}return 0;}
int main(void){
  const char*base=getenv("BASE");const char*stages=getenv("STAGES");uint64_t seed=(uint64_t)envf("SEED",0);
  TRY(del_dataset_load_fashion_mnist(&train,NULL,DEL_SPLIT_TRAIN));TRY(del_dataset_load_fashion_mnist(&test,NULL,DEL_SPLIT_TEST));
  TRY(del_dataset_split_per_class(&L,&U,train,100));
  if(getenv("THREADS"))TRY(del_set_num_threads(atoi(getenv("THREADS"))));
  del_model*m=NULL;double T0=now();
  FILE*f=base?fopen(base,"rb"):NULL;
  if(f){fclose(f);TRY(del_model_load(&m,base));}
  else{TRY(del_model_preset(&m,"fmnist-cnn",1,28,28,10));TRY(del_model_init(m,seed));del_trainer*t;
    TRY(del_trainer_new_supervised(&t,m,L));TRY(del_trainer_set_batch_size(t,64));TRY(del_trainer_set_sgd(t,0.05f,0.9f,5e-4f,1));
    TRY(del_trainer_set_schedule(t,DEL_SCHEDULE_COSINE));TRY(del_trainer_set_normalize(t,mean,sd,1));TRY(del_trainer_set_seed(t,seed));
    TRY(del_trainer_set_total_steps(t,3000));TRY(del_trainer_fit(t,3000));del_trainer_free(t);if(base)TRY(del_model_save(m,base));}
  printf("base %.4f  %.0fs\n",acc_of(m),now()-T0);fflush(stdout);
  char buf[256];snprintf(buf,sizeof buf,"%s",stages?stages:"");int k=0;
  for(char*tok=strtok(buf,",");tok;tok=strtok(NULL,","),k++){
    double t0=now();long steps=atol(tok+1);
    if(tok[0]=='F'){
      del_augment*al,*w,*s;TRY(del_augment_new(&al));TRY(del_augment_set_seed(al,seed+k*7));crop_flip(al);
      TRY(del_augment_new(&w));TRY(del_augment_set_seed(w,seed+1000003+k));crop_flip(w);
      TRY(del_augment_new(&s));TRY(del_augment_set_seed(s,seed+2000003+k));crop_flip(s);TRY(del_augment_add_randaugment(s,2,(int)envf("FIX_M",10)));TRY(del_augment_add_cutout(s,1.0f,14,0));
      del_trainer*t;TRY(del_trainer_new_consistency(&t,m,L,U,w,s));TRY(del_trainer_set_augment(t,al));TRY(del_trainer_set_batch_size(t,(int)envf("FIX_B",64)));
      TRY(del_trainer_set_unlabeled_ratio(t,(int)envf("FIX_MU",7)));TRY(del_trainer_set_sgd(t,(float)envf("FIX_LR",0.03),0.9f,5e-4f,1));
      TRY(del_trainer_set_schedule(t,DEL_SCHEDULE_COSINE));TRY(del_trainer_set_normalize(t,mean,sd,1));TRY(del_trainer_set_seed(t,seed+k));
      TRY(del_trainer_set_consistency_threshold(t,(float)envf("FIX_TAU",0.95)));TRY(del_trainer_set_ema(t,(float)envf("FIX_EMA",0.99)));
      TRY(del_trainer_set_progress(t,prog,100,NULL));if(getenv("NOPF"))TRY(del_trainer_set_prefetch(t,0));
      if(getenv("FLEX"))TRY(del_trainer_set_flexmatch(t,1));
      TRY(del_trainer_set_total_steps(t,steps));TRY(del_trainer_fit(t,steps));double mr;TRY(del_trainer_consistency_stats(t,&mr));{double dw,ss;TRY(del_trainer_fit_times(t,&dw,&ss));printf("fit_times data_wait %.2fs step %.2fs\n",dw,ss);}
      del_model*e;TRY(del_model_clone(&e,del_trainer_ema_model(t)));double araw;TRY(del_trainer_evaluate(t,test,&araw));
      del_trainer_free(t);del_model_free(m);m=e;del_augment_free(al);del_augment_free(w);del_augment_free(s);
      printf("stage %d %s ema %.4f mask %.3f %.0fs (total %.0fs)\n",k,tok,araw,mr,now()-t0,now()-T0);
    } else {
      del_augment*al,*ap;int M=(int)envf("NS_M",9),N=(int)envf("NS_N",2);
      TRY(del_augment_new(&al));TRY(del_augment_set_seed(al,seed+11+k));crop_flip(al);if(N>0)TRY(del_augment_add_randaugment(al,N,M));
      TRY(del_augment_new(&ap));TRY(del_augment_set_seed(ap,seed+13+k));crop_flip(ap);if(N>0)TRY(del_augment_add_randaugment(ap,N,M));
      del_noisy_student*ns;TRY(del_noisy_student_new(&ns,m,L,U));TRY(del_noisy_student_set_iterations(ns,1));TRY(del_noisy_student_set_steps(ns,steps));
      TRY(del_noisy_student_set_batch_sizes(ns,64,(int)envf("NS_UB",192)));
      TRY(del_noisy_student_set_selection(ns,(float)envf("NS_THR",0.3),getenv("NS_NOBAL")?0:DEL_BALANCE_MEAN));
      if(getenv("NS_HARD"))TRY(del_noisy_student_set_hard(ns,1,0.1f));
      TRY(del_noisy_student_set_init_from_teacher(ns,(int)envf("NS_INIT",1)));TRY(del_noisy_student_set_augment(ns,al,ap));
      TRY(del_noisy_student_set_sgd(ns,(float)envf("NS_LR",0.03),0.9f,5e-4f,1));TRY(del_noisy_student_set_normalize(ns,mean,sd,1));
      TRY(del_noisy_student_set_seed(ns,seed+100+k));TRY(del_noisy_student_set_progress(ns,prog,100,NULL));
      TRY(del_noisy_student_run(ns));del_model*e;TRY(del_model_clone(&e,del_noisy_student_model(ns)));del_noisy_student_free(ns);
      del_model_free(m);m=e;del_augment_free(al);del_augment_free(ap);
      printf("stage %d %s acc %.4f %.0fs (total %.0fs)\n",k,tok,acc_of(m),now()-t0,now()-T0);
    }
    fflush(stdout);
    char p[64];snprintf(p,sizeof p,"%s.stage%d.del",getenv("TAG")?getenv("TAG"):"/tmp/x/run",k);TRY(del_model_save(m,p));
  }
  return 0;
}
